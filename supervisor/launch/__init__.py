"""Launching on several hosts: waiting for the cluster, launcher command lines."""
