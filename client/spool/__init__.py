"""The spool: one run's records on disk, append-only, with an acknowledgement marker.

A spool is a folder under ``FADEWATCH_DIR/spool/``::

    run.json         project, name, config, final status once the run finished
    lock             held (flock) by the process that writes the spool
    00000000.jsonl   step records, one JSON object per line, in the order logged
    00000001.jsonl   the next segment once one passes ``segment_bytes``
    ack              {"segment": i, "offset": n}: everything before is stored on the server
    rejected.jsonl   records the server refused as invalid (kept for inspection)

Every record is appended (and handed to the OS) before it is sent, so a record survives
the death of the process that logged it; ``sync()`` also makes it survive the machine.
Segments wholly before the ack marker are deleted. If the disk refuses a write the spool
keeps later records in memory, so delivery goes on while the process lives.

Modules: files.py names the files and holds the low-level file operations (atomic writes,
the lock, finding spools); spool.py is the Spool that the worker appends to and the sender
and ``fadewatch sync`` read from.
"""

from fadewatch.spool.files import Entry, find_spools
from fadewatch.spool.spool import Spool

__all__ = ["Entry", "Spool", "find_spools"]
