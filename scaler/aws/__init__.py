"""Adapters to AWS: thin aiobotocore wrappers that batch, retry and count every call.

Nothing in here decides anything; decisions live in :mod:`scaler.plan`.
"""
