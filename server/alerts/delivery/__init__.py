"""Alert delivery: from the outbox to the receivers.

    messages.py         what a notification says, rendered per channel kind
    slack.py, webhooks.py  the two channel kinds (webhooks are signed)
    ssrf.py             refusing targets inside the server's own network
    sender.py           one HTTP delivery and its verdict
    worker.py           the daemon thread that drains the outbox, with retries and leases
"""
