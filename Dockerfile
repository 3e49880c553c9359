# Airflow 3.3.2 image with this project (core library + Encord provider) installed from the lock.
FROM apache/airflow:3.3.2-python3.11 AS airflow
USER airflow
COPY --chown=airflow:root requirements.txt requirements-dev.txt constraints.txt pyproject.toml README.md /opt/project/
COPY --chown=airflow:root include /opt/project/include
COPY --chown=airflow:root plugins /opt/project/plugins
COPY --chown=airflow:root tools /opt/project/tools
# The `celery` extra (provider, celery 5.6, Redis client, psycopg2, asyncpg) comes from the same lock.
RUN pip install --no-cache-dir -r /opt/project/requirements.txt -c /opt/project/constraints.txt \
      -e "/opt/project[celery]"

# The compose `standins` profile's init service (key pair, demo bucket, demo connections) also
# generates the demo media: the same image plus the `standins` extra, from the same lock.
FROM airflow AS standins
RUN pip install --no-cache-dir -c /opt/project/constraints.txt -e "/opt/project[celery,standins]"
