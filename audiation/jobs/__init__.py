"""What each command does with its folder: audiate (`audiate_job`), the folder's lock and resume
(`folder`), the subscribers that take a job's records to disk and W&B (`subscribers`), dataset examples,
SAE features, directions, and a multirun's callbacks (`sweep_callbacks`).
"""
