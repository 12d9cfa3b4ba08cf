"""Print the URL of the local PostgreSQL server when it answers, else nothing.

`make test` uses this to run the suite on PostgreSQL too whenever the server runs.
"""

import socket

try:
    with socket.create_connection(("127.0.0.1", 5432), timeout=1):
        print("postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
except OSError:
    pass
