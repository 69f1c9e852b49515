"""Charging data records of the 5GMC: one ``MessageCdr`` per message outcome (issue 3).

Relayed MESSAGEs get a record when their final response goes upstream; stored ones when they
are delivered or expire; duplicates when they are recognised. Records are buffered by the
:class:`CdrWriter` and flushed every second by the node's housekeeping and on shutdown.
"""

from __future__ import annotations

import itertools
import os
import time

from ..obs import cdr_pb2
from ..obs.cdr import CdrWriter
from ..obs.cdr_pb2 import MessageCdr

Outcome = cdr_pb2.Outcome
DELIVERED = cdr_pb2.OUTCOME_DELIVERED
EXPIRED = cdr_pb2.OUTCOME_EXPIRED
FAILED = cdr_pb2.OUTCOME_FAILED
REJECTED = cdr_pb2.OUTCOME_REJECTED
DUPLICATE = cdr_pb2.OUTCOME_DUPLICATE
REVOKED = cdr_pb2.OUTCOME_REVOKED
FALLBACK_SMS = cdr_pb2.OUTCOME_FALLBACK_SMS


class CdrRecorder:
    def __init__(self, writer: CdrWriter, node: str, operator: str) -> None:
        self.writer = writer
        self.node = node
        self.operator = operator
        self._prefix = os.urandom(4).hex()
        self._seq = itertools.count(1)

    def record(self, *, message_id: str, sender: str, recipient: str, outcome: Outcome,
               sip_status: int, received_at: float, final_at: float | None = None,
               content_type: str = "", body_size: int = 0, attempts: int = 0,
               imdn_message_id: str | None = None, recipients: int = 1,
               kind: int = cdr_pb2.MESSAGE_KIND_P2P) -> None:
        rec = MessageCdr(
            record_id=f"{self._prefix}-{next(self._seq)}", node=self.node,
            operator=self.operator, message_id=message_id,
            imdn_message_id=imdn_message_id or "", sender=sender, recipient=recipient,
            kind=kind, content_type=content_type, body_size=body_size,  # type: ignore[arg-type]
            outcome=outcome,
            sip_final_status=sip_status, delivery_attempts=attempts,
            recipients_count=recipients,
        )
        rec.received_time.FromMicroseconds(int(received_at * 1e6))
        rec.final_time.FromMicroseconds(int((final_at or time.time()) * 1e6))
        self.writer.write(rec)

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
