# The project's Airflow image: the official Airflow 3.3 image extended with requirements.txt and
# the project's code. Every component of docker-compose.yaml and of the Helm values
# (deploy/helm/values.yaml) runs it; nothing is installed when a container starts.
#
#   docker build -t retention-airflow:latest .
#
# Not built by the test suite (the project's build machines have no Docker engine);
# tests/scripts/test_deploy_files.py checks that its base image is requirements.txt's Airflow.
FROM apache/airflow:3.3.2-python3.11

# Extending the image as Airflow's docs recommend: as the airflow user, pinning
# apache-airflow==$AIRFLOW_VERSION so that pip never moves Airflow, under the constraints the
# image was built with (~/constraints.txt) - less the packages requirements.txt pins itself
# (scripts/image_constraints.py says why).
USER airflow
COPY --chown=airflow:0 requirements.txt scripts/image_constraints.py /tmp/retention-build/
RUN python /tmp/retention-build/image_constraints.py "${HOME}/constraints.txt" /tmp/retention-build/requirements.txt \
        > /tmp/retention-build/constraints.txt \
    && pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" \
        -r /tmp/retention-build/requirements.txt --constraint /tmp/retention-build/constraints.txt \
    && rm -rf /tmp/retention-build

# The project, on PYTHONPATH (its DAGs import include.*), with Airflow pointed at its DAGs and plugin.
ARG PROJECT_DIR=/opt/airflow/project
ENV PYTHONPATH=${PROJECT_DIR} \
    AIRFLOW__CORE__DAGS_FOLDER=${PROJECT_DIR}/dags \
    AIRFLOW__CORE__PLUGINS_FOLDER=${PROJECT_DIR}/plugins \
    AIRFLOW__CORE__LOAD_EXAMPLES=False
COPY --chown=airflow:0 dags/ ${PROJECT_DIR}/dags/
COPY --chown=airflow:0 include/ ${PROJECT_DIR}/include/
COPY --chown=airflow:0 plugins/ ${PROJECT_DIR}/plugins/
COPY --chown=airflow:0 scripts/ ${PROJECT_DIR}/scripts/

# The shared evidence folders (certificates, reports, anchors; access exports), owned by the
# airflow user: a named volume mounted here starts with this ownership.
RUN mkdir -p /opt/airflow/retention-data/reports /opt/airflow/retention-data/exports \
    && chmod 0770 /opt/airflow/retention-data/reports /opt/airflow/retention-data/exports
