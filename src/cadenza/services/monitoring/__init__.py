"""What operators watch: the workers' heartbeats (heartbeat) and the state /metrics and
/readyz report, read from the database at the moment they are asked (state).

Reading the state from the database, rather than counting in each process, is what
keeps the figures right with several web processes and workers on several hosts: any
web process answers for the whole installation (docs/operations.md).

Reads only, but for the heartbeat each worker writes; calls nothing else of services.
"""
