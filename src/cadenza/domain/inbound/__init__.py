"""Reading mail that arrives in a sender's inbox: is it a reply, an auto-reply, a bounce?

Pure functions over the bytes of one message; matching it to what we sent needs the
database and lives in services/signals/inbound.py.
"""
