"""The config boundary: the schema of every option (`config_schema`), single-value and cross-option
checks (`checks`), the plan that holds every checked value and builds the core's objects (`builder`), and
where the Hydra configs are (`configs`).
"""
