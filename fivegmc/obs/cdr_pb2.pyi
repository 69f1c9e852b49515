import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MessageKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MESSAGE_KIND_UNSPECIFIED: _ClassVar[MessageKind]
    MESSAGE_KIND_P2P: _ClassVar[MessageKind]
    MESSAGE_KIND_A2P: _ClassVar[MessageKind]
    MESSAGE_KIND_P2A: _ClassVar[MessageKind]
    MESSAGE_KIND_NNI_IN: _ClassVar[MessageKind]
    MESSAGE_KIND_NNI_OUT: _ClassVar[MessageKind]

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    OUTCOME_DELIVERED: _ClassVar[Outcome]
    OUTCOME_EXPIRED: _ClassVar[Outcome]
    OUTCOME_FAILED: _ClassVar[Outcome]
    OUTCOME_FALLBACK_SMS: _ClassVar[Outcome]
    OUTCOME_REJECTED: _ClassVar[Outcome]
    OUTCOME_DUPLICATE: _ClassVar[Outcome]
    OUTCOME_REVOKED: _ClassVar[Outcome]
MESSAGE_KIND_UNSPECIFIED: MessageKind
MESSAGE_KIND_P2P: MessageKind
MESSAGE_KIND_A2P: MessageKind
MESSAGE_KIND_P2A: MessageKind
MESSAGE_KIND_NNI_IN: MessageKind
MESSAGE_KIND_NNI_OUT: MessageKind
OUTCOME_UNSPECIFIED: Outcome
OUTCOME_DELIVERED: Outcome
OUTCOME_EXPIRED: Outcome
OUTCOME_FAILED: Outcome
OUTCOME_FALLBACK_SMS: Outcome
OUTCOME_REJECTED: Outcome
OUTCOME_DUPLICATE: Outcome
OUTCOME_REVOKED: Outcome

class MessageCdr(_message.Message):
    __slots__ = ("record_id", "node", "operator", "message_id", "imdn_message_id", "sender", "recipient", "kind", "content_type", "body_size", "received_time", "final_time", "outcome", "sip_final_status", "delivery_attempts", "recipients_count", "extra")
    class ExtraEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    IMDN_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    BODY_SIZE_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_TIME_FIELD_NUMBER: _ClassVar[int]
    FINAL_TIME_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    SIP_FINAL_STATUS_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    RECIPIENTS_COUNT_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    node: str
    operator: str
    message_id: str
    imdn_message_id: str
    sender: str
    recipient: str
    kind: MessageKind
    content_type: str
    body_size: int
    received_time: _timestamp_pb2.Timestamp
    final_time: _timestamp_pb2.Timestamp
    outcome: Outcome
    sip_final_status: int
    delivery_attempts: int
    recipients_count: int
    extra: _containers.ScalarMap[str, str]
    def __init__(self, record_id: _Optional[str] = ..., node: _Optional[str] = ..., operator: _Optional[str] = ..., message_id: _Optional[str] = ..., imdn_message_id: _Optional[str] = ..., sender: _Optional[str] = ..., recipient: _Optional[str] = ..., kind: _Optional[_Union[MessageKind, str]] = ..., content_type: _Optional[str] = ..., body_size: _Optional[int] = ..., received_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., final_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., sip_final_status: _Optional[int] = ..., delivery_attempts: _Optional[int] = ..., recipients_count: _Optional[int] = ..., extra: _Optional[_Mapping[str, str]] = ...) -> None: ...
