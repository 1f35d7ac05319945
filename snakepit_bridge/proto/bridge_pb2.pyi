from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Blob(_message.Message):
    __slots__ = ("data", "dtype", "shape", "content_type", "shm_name", "shm_size")
    DATA_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SHM_NAME_FIELD_NUMBER: _ClassVar[int]
    SHM_SIZE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    content_type: str
    shm_name: str
    shm_size: int
    def __init__(self, data: _Optional[bytes] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., content_type: _Optional[str] = ..., shm_name: _Optional[str] = ..., shm_size: _Optional[int] = ...) -> None: ...

class ErrorInfo(_message.Message):
    __slots__ = ("category", "type", "message", "details_json", "traceback")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    TRACEBACK_FIELD_NUMBER: _ClassVar[int]
    category: str
    type: str
    message: str
    details_json: bytes
    traceback: str
    def __init__(self, category: _Optional[str] = ..., type: _Optional[str] = ..., message: _Optional[str] = ..., details_json: _Optional[bytes] = ..., traceback: _Optional[str] = ...) -> None: ...

class PingRequest(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: str
    def __init__(self, message: _Optional[str] = ...) -> None: ...

class PingResponse(_message.Message):
    __slots__ = ("message", "worker_id", "pid", "timestamp")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    message: str
    worker_id: str
    pid: int
    timestamp: float
    def __init__(self, message: _Optional[str] = ..., worker_id: _Optional[str] = ..., pid: _Optional[int] = ..., timestamp: _Optional[float] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("seq", "sent_at")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_FIELD_NUMBER: _ClassVar[int]
    seq: int
    sent_at: float
    def __init__(self, seq: _Optional[int] = ..., sent_at: _Optional[float] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("seq", "worker_id", "in_flight", "rss_bytes", "timestamp", "running")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    seq: int
    worker_id: str
    in_flight: int
    rss_bytes: int
    timestamp: float
    running: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, seq: _Optional[int] = ..., worker_id: _Optional[str] = ..., in_flight: _Optional[int] = ..., rss_bytes: _Optional[int] = ..., timestamp: _Optional[float] = ..., running: _Optional[_Iterable[str]] = ...) -> None: ...

class DescribeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ParameterSpec(_message.Message):
    __slots__ = ("name", "type", "required", "default_json", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_JSON_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    required: bool
    default_json: bytes
    description: str
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., required: _Optional[bool] = ..., default_json: _Optional[bytes] = ..., description: _Optional[str] = ...) -> None: ...

class ToolSpec(_message.Message):
    __slots__ = ("name", "description", "parameters", "streaming")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    STREAMING_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    parameters: _containers.RepeatedCompositeFieldContainer[ParameterSpec]
    streaming: bool
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., parameters: _Optional[_Iterable[_Union[ParameterSpec, _Mapping]]] = ..., streaming: _Optional[bool] = ...) -> None: ...

class DescribeResponse(_message.Message):
    __slots__ = ("adapter", "version", "language", "capacity", "tools", "worker_id", "pid", "runtime_version")
    ADAPTER_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_VERSION_FIELD_NUMBER: _ClassVar[int]
    adapter: str
    version: str
    language: str
    capacity: int
    tools: _containers.RepeatedCompositeFieldContainer[ToolSpec]
    worker_id: str
    pid: int
    runtime_version: str
    def __init__(self, adapter: _Optional[str] = ..., version: _Optional[str] = ..., language: _Optional[str] = ..., capacity: _Optional[int] = ..., tools: _Optional[_Iterable[_Union[ToolSpec, _Mapping]]] = ..., worker_id: _Optional[str] = ..., pid: _Optional[int] = ..., runtime_version: _Optional[str] = ...) -> None: ...

class ExecuteRequest(_message.Message):
    __slots__ = ("request_id", "tool", "args_json", "blobs", "session_id", "correlation_id", "timeout", "metadata")
    class BlobsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Blob
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Blob, _Mapping]] = ...) -> None: ...
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_FIELD_NUMBER: _ClassVar[int]
    ARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    tool: str
    args_json: bytes
    blobs: _containers.MessageMap[str, Blob]
    session_id: str
    correlation_id: str
    timeout: float
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, request_id: _Optional[str] = ..., tool: _Optional[str] = ..., args_json: _Optional[bytes] = ..., blobs: _Optional[_Mapping[str, Blob]] = ..., session_id: _Optional[str] = ..., correlation_id: _Optional[str] = ..., timeout: _Optional[float] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ExecuteResponse(_message.Message):
    __slots__ = ("success", "result_json", "blobs", "error", "metadata")
    class BlobsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Blob
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Blob, _Mapping]] = ...) -> None: ...
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    success: bool
    result_json: bytes
    blobs: _containers.MessageMap[str, Blob]
    error: ErrorInfo
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, success: _Optional[bool] = ..., result_json: _Optional[bytes] = ..., blobs: _Optional[_Mapping[str, Blob]] = ..., error: _Optional[_Union[ErrorInfo, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ToolChunk(_message.Message):
    __slots__ = ("chunk_id", "data_json", "blobs", "is_final", "metadata", "error")
    class BlobsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Blob
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Blob, _Mapping]] = ...) -> None: ...
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CHUNK_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    IS_FINAL_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    chunk_id: int
    data_json: bytes
    blobs: _containers.MessageMap[str, Blob]
    is_final: bool
    metadata: _containers.ScalarMap[str, str]
    error: ErrorInfo
    def __init__(self, chunk_id: _Optional[int] = ..., data_json: _Optional[bytes] = ..., blobs: _Optional[_Mapping[str, Blob]] = ..., is_final: _Optional[bool] = ..., metadata: _Optional[_Mapping[str, str]] = ..., error: _Optional[_Union[ErrorInfo, _Mapping]] = ...) -> None: ...

class InitSessionRequest(_message.Message):
    __slots__ = ("session_id", "metadata_json")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    metadata_json: bytes
    def __init__(self, session_id: _Optional[str] = ..., metadata_json: _Optional[bytes] = ...) -> None: ...

class InitSessionResponse(_message.Message):
    __slots__ = ("created",)
    CREATED_FIELD_NUMBER: _ClassVar[int]
    created: bool
    def __init__(self, created: _Optional[bool] = ...) -> None: ...

class EndSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class EndSessionResponse(_message.Message):
    __slots__ = ("existed",)
    EXISTED_FIELD_NUMBER: _ClassVar[int]
    existed: bool
    def __init__(self, existed: _Optional[bool] = ...) -> None: ...

class TelemetryControl(_message.Message):
    __slots__ = ("enabled", "sampling_rate", "allow", "deny")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_RATE_FIELD_NUMBER: _ClassVar[int]
    ALLOW_FIELD_NUMBER: _ClassVar[int]
    DENY_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    sampling_rate: float
    allow: _containers.RepeatedScalarFieldContainer[str]
    deny: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, enabled: _Optional[bool] = ..., sampling_rate: _Optional[float] = ..., allow: _Optional[_Iterable[str]] = ..., deny: _Optional[_Iterable[str]] = ...) -> None: ...

class TelemetryEvent(_message.Message):
    __slots__ = ("event", "measurements_json", "metadata_json", "timestamp", "correlation_id", "worker_id", "dropped")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    MEASUREMENTS_JSON_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    event: _containers.RepeatedScalarFieldContainer[str]
    measurements_json: bytes
    metadata_json: bytes
    timestamp: float
    correlation_id: str
    worker_id: str
    dropped: int
    def __init__(self, event: _Optional[_Iterable[str]] = ..., measurements_json: _Optional[bytes] = ..., metadata_json: _Optional[bytes] = ..., timestamp: _Optional[float] = ..., correlation_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., dropped: _Optional[int] = ...) -> None: ...

class Cancel(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Credit(_message.Message):
    __slots__ = ("chunks",)
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    chunks: int
    def __init__(self, chunks: _Optional[int] = ...) -> None: ...

class ToolChunks(_message.Message):
    __slots__ = ("chunks", "first_chunk_id", "packed_json")
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    FIRST_CHUNK_ID_FIELD_NUMBER: _ClassVar[int]
    PACKED_JSON_FIELD_NUMBER: _ClassVar[int]
    chunks: _containers.RepeatedCompositeFieldContainer[ToolChunk]
    first_chunk_id: int
    packed_json: bytes
    def __init__(self, chunks: _Optional[_Iterable[_Union[ToolChunk, _Mapping]]] = ..., first_chunk_id: _Optional[int] = ..., packed_json: _Optional[bytes] = ...) -> None: ...

class ExecuteBatch(_message.Message):
    __slots__ = ("request_id", "requests", "template", "packed_args_json")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    PACKED_ARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    requests: _containers.RepeatedCompositeFieldContainer[ExecuteRequest]
    template: ExecuteRequest
    packed_args_json: bytes
    def __init__(self, request_id: _Optional[str] = ..., requests: _Optional[_Iterable[_Union[ExecuteRequest, _Mapping]]] = ..., template: _Optional[_Union[ExecuteRequest, _Mapping]] = ..., packed_args_json: _Optional[bytes] = ...) -> None: ...

class ExecuteResults(_message.Message):
    __slots__ = ("responses", "packed_json")
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    PACKED_JSON_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[ExecuteResponse]
    packed_json: bytes
    def __init__(self, responses: _Optional[_Iterable[_Union[ExecuteResponse, _Mapping]]] = ..., packed_json: _Optional[bytes] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("id", "execute", "execute_stream", "result", "chunk", "cancel", "credit", "heartbeat", "heartbeat_reply", "describe", "description", "ping", "pong", "init_session", "session_initialized", "end_session", "session_ended", "error", "call_host_tool", "list_host_tools", "host_tools", "get_variable", "set_variable", "variable", "get_program", "store_program", "program", "telemetry_control", "telemetry_event", "chunks", "execute_batch", "results")
    ID_FIELD_NUMBER: _ClassVar[int]
    EXECUTE_FIELD_NUMBER: _ClassVar[int]
    EXECUTE_STREAM_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    CREDIT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_REPLY_FIELD_NUMBER: _ClassVar[int]
    DESCRIBE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    PONG_FIELD_NUMBER: _ClassVar[int]
    INIT_SESSION_FIELD_NUMBER: _ClassVar[int]
    SESSION_INITIALIZED_FIELD_NUMBER: _ClassVar[int]
    END_SESSION_FIELD_NUMBER: _ClassVar[int]
    SESSION_ENDED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CALL_HOST_TOOL_FIELD_NUMBER: _ClassVar[int]
    LIST_HOST_TOOLS_FIELD_NUMBER: _ClassVar[int]
    HOST_TOOLS_FIELD_NUMBER: _ClassVar[int]
    GET_VARIABLE_FIELD_NUMBER: _ClassVar[int]
    SET_VARIABLE_FIELD_NUMBER: _ClassVar[int]
    VARIABLE_FIELD_NUMBER: _ClassVar[int]
    GET_PROGRAM_FIELD_NUMBER: _ClassVar[int]
    STORE_PROGRAM_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_CONTROL_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_EVENT_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    EXECUTE_BATCH_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    id: int
    execute: ExecuteRequest
    execute_stream: ExecuteRequest
    result: ExecuteResponse
    chunk: ToolChunk
    cancel: Cancel
    credit: Credit
    heartbeat: HeartbeatRequest
    heartbeat_reply: HeartbeatResponse
    describe: DescribeRequest
    description: DescribeResponse
    ping: PingRequest
    pong: PingResponse
    init_session: InitSessionRequest
    session_initialized: InitSessionResponse
    end_session: EndSessionRequest
    session_ended: EndSessionResponse
    error: ErrorInfo
    call_host_tool: CallHostToolRequest
    list_host_tools: ListHostToolsRequest
    host_tools: ListHostToolsResponse
    get_variable: GetVariableRequest
    set_variable: SetVariableRequest
    variable: VariableResponse
    get_program: GetProgramRequest
    store_program: StoreProgramRequest
    program: ProgramResponse
    telemetry_control: TelemetryControl
    telemetry_event: TelemetryEvent
    chunks: ToolChunks
    execute_batch: ExecuteBatch
    results: ExecuteResults
    def __init__(self, id: _Optional[int] = ..., execute: _Optional[_Union[ExecuteRequest, _Mapping]] = ..., execute_stream: _Optional[_Union[ExecuteRequest, _Mapping]] = ..., result: _Optional[_Union[ExecuteResponse, _Mapping]] = ..., chunk: _Optional[_Union[ToolChunk, _Mapping]] = ..., cancel: _Optional[_Union[Cancel, _Mapping]] = ..., credit: _Optional[_Union[Credit, _Mapping]] = ..., heartbeat: _Optional[_Union[HeartbeatRequest, _Mapping]] = ..., heartbeat_reply: _Optional[_Union[HeartbeatResponse, _Mapping]] = ..., describe: _Optional[_Union[DescribeRequest, _Mapping]] = ..., description: _Optional[_Union[DescribeResponse, _Mapping]] = ..., ping: _Optional[_Union[PingRequest, _Mapping]] = ..., pong: _Optional[_Union[PingResponse, _Mapping]] = ..., init_session: _Optional[_Union[InitSessionRequest, _Mapping]] = ..., session_initialized: _Optional[_Union[InitSessionResponse, _Mapping]] = ..., end_session: _Optional[_Union[EndSessionRequest, _Mapping]] = ..., session_ended: _Optional[_Union[EndSessionResponse, _Mapping]] = ..., error: _Optional[_Union[ErrorInfo, _Mapping]] = ..., call_host_tool: _Optional[_Union[CallHostToolRequest, _Mapping]] = ..., list_host_tools: _Optional[_Union[ListHostToolsRequest, _Mapping]] = ..., host_tools: _Optional[_Union[ListHostToolsResponse, _Mapping]] = ..., get_variable: _Optional[_Union[GetVariableRequest, _Mapping]] = ..., set_variable: _Optional[_Union[SetVariableRequest, _Mapping]] = ..., variable: _Optional[_Union[VariableResponse, _Mapping]] = ..., get_program: _Optional[_Union[GetProgramRequest, _Mapping]] = ..., store_program: _Optional[_Union[StoreProgramRequest, _Mapping]] = ..., program: _Optional[_Union[ProgramResponse, _Mapping]] = ..., telemetry_control: _Optional[_Union[TelemetryControl, _Mapping]] = ..., telemetry_event: _Optional[_Union[TelemetryEvent, _Mapping]] = ..., chunks: _Optional[_Union[ToolChunks, _Mapping]] = ..., execute_batch: _Optional[_Union[ExecuteBatch, _Mapping]] = ..., results: _Optional[_Union[ExecuteResults, _Mapping]] = ...) -> None: ...

class CallHostToolRequest(_message.Message):
    __slots__ = ("tool", "args_json", "blobs", "session_id", "correlation_id", "worker_id")
    class BlobsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Blob
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Blob, _Mapping]] = ...) -> None: ...
    TOOL_FIELD_NUMBER: _ClassVar[int]
    ARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CORRELATION_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    tool: str
    args_json: bytes
    blobs: _containers.MessageMap[str, Blob]
    session_id: str
    correlation_id: str
    worker_id: str
    def __init__(self, tool: _Optional[str] = ..., args_json: _Optional[bytes] = ..., blobs: _Optional[_Mapping[str, Blob]] = ..., session_id: _Optional[str] = ..., correlation_id: _Optional[str] = ..., worker_id: _Optional[str] = ...) -> None: ...

class ListHostToolsRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class ListHostToolsResponse(_message.Message):
    __slots__ = ("tools",)
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    tools: _containers.RepeatedCompositeFieldContainer[ToolSpec]
    def __init__(self, tools: _Optional[_Iterable[_Union[ToolSpec, _Mapping]]] = ...) -> None: ...

class GetVariableRequest(_message.Message):
    __slots__ = ("session_id", "name")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    name: str
    def __init__(self, session_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class SetVariableRequest(_message.Message):
    __slots__ = ("session_id", "name", "value_json", "blobs", "type", "constraints_json")
    class BlobsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Blob
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Blob, _Mapping]] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CONSTRAINTS_JSON_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    name: str
    value_json: bytes
    blobs: _containers.MessageMap[str, Blob]
    type: str
    constraints_json: bytes
    def __init__(self, session_id: _Optional[str] = ..., name: _Optional[str] = ..., value_json: _Optional[bytes] = ..., blobs: _Optional[_Mapping[str, Blob]] = ..., type: _Optional[str] = ..., constraints_json: _Optional[bytes] = ...) -> None: ...

class VariableResponse(_message.Message):
    __slots__ = ("success", "name", "type", "value_json", "blobs", "error")
    class BlobsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Blob
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Blob, _Mapping]] = ...) -> None: ...
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VALUE_JSON_FIELD_NUMBER: _ClassVar[int]
    BLOBS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    success: bool
    name: str
    type: str
    value_json: bytes
    blobs: _containers.MessageMap[str, Blob]
    error: ErrorInfo
    def __init__(self, success: _Optional[bool] = ..., name: _Optional[str] = ..., type: _Optional[str] = ..., value_json: _Optional[bytes] = ..., blobs: _Optional[_Mapping[str, Blob]] = ..., error: _Optional[_Union[ErrorInfo, _Mapping]] = ...) -> None: ...

class GetProgramRequest(_message.Message):
    __slots__ = ("session_id", "program_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    program_id: str
    def __init__(self, session_id: _Optional[str] = ..., program_id: _Optional[str] = ...) -> None: ...

class StoreProgramRequest(_message.Message):
    __slots__ = ("session_id", "program_id", "data_json")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PROGRAM_ID_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    program_id: str
    data_json: bytes
    def __init__(self, session_id: _Optional[str] = ..., program_id: _Optional[str] = ..., data_json: _Optional[bytes] = ...) -> None: ...

class ProgramResponse(_message.Message):
    __slots__ = ("success", "data_json", "error")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    success: bool
    data_json: bytes
    error: ErrorInfo
    def __init__(self, success: _Optional[bool] = ..., data_json: _Optional[bytes] = ..., error: _Optional[_Union[ErrorInfo, _Mapping]] = ...) -> None: ...

class WorkerHeartbeat(_message.Message):
    __slots__ = ("worker_id", "seq", "sent_at")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    seq: int
    sent_at: float
    def __init__(self, worker_id: _Optional[str] = ..., seq: _Optional[int] = ..., sent_at: _Optional[float] = ...) -> None: ...

class HostHeartbeat(_message.Message):
    __slots__ = ("seq", "timestamp")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    seq: int
    timestamp: float
    def __init__(self, seq: _Optional[int] = ..., timestamp: _Optional[float] = ...) -> None: ...
