"""The one place where component images and their pinned packages are defined.

Every component imports its ``base_image`` and ``packages_to_install`` from here. The pins
equal the project's own dependencies (pyproject.toml), so an offline ``kfp.local`` run finds
them already installed, and Vertex AI installs the very same versions into python:3.11-slim.
"""

BASE_IMAGE = "python:3.11-slim"

KFP = "kfp==2.17.0"
STORAGE = "google-cloud-storage==3.17.1"
GENAI = "google-genai==2.34.0"
PILLOW = "pillow==13.0.0"
# GCPC for its gcp_resources proto and Vertex artifact types (google.VertexModel, google.VertexEndpoint).
GCPC = "google-cloud-pipeline-components==2.22.0"

# kfp is listed explicitly (and install_kfp_package=False set) so its version is pinned
# here rather than chosen by the compiler, and local runs skip a pip call per task.
BASE_PACKAGES = [KFP]
STORAGE_PACKAGES = [KFP, STORAGE]
IMAGE_PACKAGES = [KFP, STORAGE, PILLOW]
GENAI_PACKAGES = [KFP, GENAI]
# The tuning steps run for hours, so GCPC's extra install time at start-up is negligible there.
TUNING_PACKAGES = [KFP, STORAGE, GENAI, GCPC]  # storage: launch_tuning reads the champion record
EVAL_PACKAGES = [KFP, STORAGE, GENAI, PILLOW]
