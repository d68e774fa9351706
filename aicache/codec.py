"""Safe serialization, pluggable compression and the framed bytes format stored in Redis.

An entry in Redis is::

    +-------+------+----------------+------------+---------------------------+
    | magic | flag | cached_at (ms) | ttl (s)    | payload (orjson, maybe    |
    | 0xA1  | u8   | u64 big-endian | u32 b-e    | compressed per flag)      |
    +-------+------+----------------+------------+---------------------------+

With a trained dictionary (flag 3, zstd), the payload starts with the dictionary's id, so any
process can tell which dictionary it needs (``aicache.dictionaries`` publishes them in Redis)::

    | header | [meta] | dictionary id u32 b-e | zstd frame compressed with that dictionary |

or, when the entry carries metadata (tags, what computing it cost)::

    | 0xA2  | flag | cached_at (ms) | ttl (s) | meta length u16 b-e | meta (orjson) | payload |

With ``SIGNING_KEY`` set, the magic's high nibble is 0xB (0xB1, 0xB2) and the frame ends with an
HMAC-SHA256 over everything before it; a reader with keys accepts only frames that verify against
one of them (anything else is a forged entry). The magic byte doubles as the format version;
every version stays readable. ``flag`` names the
compressor, so a reader decodes any entry whatever algorithm is configured now. Anything else (a
pickle, truncated or corrupt bytes or metadata, an unknown flag, a decompression bomb) raises
:class:`CodecError`, which the backend turns into a miss plus an error count; a frame whose
dictionary this process cannot find raises :class:`UnknownDictionary` (a miss, counted as
``unknown_dictionary``). Nothing here ever unpickles.
"""

from __future__ import annotations

import hmac
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Protocol

import orjson
from django.utils.module_loading import import_string

from aicache.exceptions import CodecError

MAGIC = 0xA1
MAGIC_META = 0xA2
SIGNED = 0x10  # MAGIC | SIGNED = 0xB1, MAGIC_META | SIGNED = 0xB2
SIGNATURE_SIZE = 32
HEADER = struct.Struct(">BBQI")
HEADER_SIZE = HEADER.size
DICT_ID = struct.Struct(">I")
ZSTD_DICT_FLAG = 3
# Above this a dictionary costs more than it saves: at 50 KB of prose it compressed 398 us vs 297
# plain and decompressed 79 vs 66 us for 0.301 vs 0.320 of the JSON; at 5 KB it is faster both
# ways (26 vs 32 us, 9.3 vs 10.6 us) and smaller (0.356 vs 0.440) (docs/performance.md).
DICTIONARY_MAX_PAYLOAD = 16384
# Dictionary frames up to this size are compressed at SMALL_DICTIONARY_LEVEL when no level is
# configured (and dictionaries are trained for that level: aicache.dictionaries.train_operation).
# Trained and compressed at 5 instead of 3, 800 B answers went from 0.367 to 0.330 of the JSON
# (cyrillic), 0.267 to 0.251 (prose), 0.321 to 0.319 (fields); over 8 other answers each 0.438 ->
# 0.389, 0.384 -> 0.364, 0.323 -> 0.313; 2 KB 0.392 -> 0.350 cyrillic. It costs 7 -> 12 us per
# 800 B compression after a round trip. At 5 KB level 5 took 40 -> 96 us (0.320 -> 0.287 cyrillic,
# 0.351 -> 0.341 prose), so larger frames stay at level 3 (with a level-5 dictionary: prose 0.351
# -> 0.363, cyrillic 0.320 -> 0.313, fields 0.238 -> 0.243; issue 14, docs/performance.md).
SMALL_DICTIONARY_PAYLOAD = 2048
SMALL_DICTIONARY_LEVEL = 5
META_LENGTH = struct.Struct(">H")
MAX_META_BYTES = 65535
MAX_DECOMPRESSED_BYTES = 64 * 1024 * 1024


class BaseCompressor:
    """A plug-in: ``flag`` is stored in each frame; ``level`` comes from COMPRESSION_LEVEL."""

    flag: ClassVar[int]
    name: ClassVar[str]

    def __init__(self, level: int | None = None) -> None:
        self.level = level

    def compress(self, data: bytes) -> bytes:
        raise NotImplementedError

    def decompress(self, data: bytes, max_size: int) -> bytes:
        raise NotImplementedError


class IdentityCompressor(BaseCompressor):
    flag = 0
    name = "none"

    def compress(self, data: bytes) -> bytes:
        return data

    def decompress(self, data: bytes, max_size: int) -> bytes:
        return data


class ZlibCompressor(BaseCompressor):
    flag = 1
    name = "zlib"

    def compress(self, data: bytes) -> bytes:
        return zlib.compress(data, 6 if self.level is None else self.level)

    def decompress(self, data: bytes, max_size: int) -> bytes:
        inflater = zlib.decompressobj()
        out = inflater.decompress(data, max_size)
        if inflater.unconsumed_tail:
            raise CodecError(f"zlib payload inflates beyond {max_size} bytes")
        if not inflater.eof:
            raise CodecError("truncated zlib payload")
        return out


class ZstdCompressor(BaseCompressor):
    flag = 2
    name = "zstd"

    def __init__(self, level: int | None = None) -> None:
        super().__init__(level)
        import zstandard

        self._zstd = zstandard
        self._level = 3 if level is None else level
        self._small_level = SMALL_DICTIONARY_LEVEL if level is None else level
        self._local = threading.local()
        self._precompute_lock = threading.Lock()
        # id(dictionary) -> (dictionary, its copies digested at this level and at the small-payload
        # level); holding the dictionary keeps its id from being reused by another one meanwhile.
        self._precomputed: dict[int, tuple[Any, Any, Any]] = {}

    # zstandard (de)compressor objects are not thread-safe: one pair per thread (and, with
    # dictionaries, one pair per thread and dictionary id).
    def _pair(self) -> tuple[Any, Any]:
        pair = getattr(self._local, "pair", None)
        if pair is None:
            pair = (self._zstd.ZstdCompressor(level=self._level), self._zstd.ZstdDecompressor())
            self._local.pair = pair
        return pair

    def _dict_pair(self, dict_id: int, dictionary: Any) -> tuple[Any, Any, Any, Any]:
        """(compressor, decompressor, dictionary, compressor for small payloads) of this thread."""
        pairs = getattr(self._local, "dict_pairs", None)
        if pairs is None:
            pairs = self._local.dict_pairs = {}
        pair = pairs.get(dict_id)
        if pair is None or pair[2] is not dictionary:
            if len(pairs) >= 64:  # retrained dictionaries come and go: keep a bounded set
                pairs.clear()
            large, small = self._digested(dictionary)
            # The frame names its dictionary itself (DICT_ID): zstd's own copy would be 4 bytes more.
            pair = (
                self._zstd.ZstdCompressor(level=self._level, dict_data=large, write_dict_id=False),
                self._zstd.ZstdDecompressor(dict_data=dictionary),
                dictionary,
                self._zstd.ZstdCompressor(level=self._small_level, dict_data=small, write_dict_id=False),
            )
            pairs[dict_id] = pair
        return pair

    def _digested(self, dictionary: Any) -> tuple[Any, Any]:
        """Private copies of ``dictionary`` digested at this level and at the small-payload level
        (one object when they are equal), made once per dictionary object.

        The digested dictionary, built once: without it zstd re-digests the whole dictionary per
        call (compressing 50 KB of prose: 558 us, 398 with it; short run). Copies, never the
        shared object: a digest replaces the object's previous one, which python-zstandard frees,
        and another thread may be compressing with it right then (once this bounded set was
        cleared, the same dictionary would be digested again: review of issue 14). Each thread's
        compressors hold their copy, so clearing the set frees nothing in use."""
        with self._precompute_lock:
            entry = self._precomputed.get(id(dictionary))
            if entry is None or entry[0] is not dictionary:
                if len(self._precomputed) >= 64:  # retrained dictionaries come and go
                    self._precomputed.clear()
                raw = dictionary.as_bytes()
                large = self._zstd.ZstdCompressionDict(raw)
                large.precompute_compress(level=self._level)
                small = large
                if self._small_level != self._level:
                    small = self._zstd.ZstdCompressionDict(raw)
                    small.precompute_compress(level=self._small_level)
                entry = self._precomputed[id(dictionary)] = (dictionary, large, small)
            return entry[1], entry[2]

    def compress(self, data: bytes) -> bytes:
        return self._pair()[0].compress(data)

    def decompress(self, data: bytes, max_size: int) -> bytes:
        try:
            # max_output_size binds only frames that do not declare their size: a frame declaring
            # 200 MB would be inflated whole (test_planted_payloads_under_live_keys_are_counted_misses)
            if self._zstd.frame_content_size(data) > max_size:
                raise CodecError(f"zstd payload declares more than {max_size} bytes")
            return self._pair()[1].decompress(data, max_output_size=max_size)
        except self._zstd.ZstdError as exc:
            raise CodecError(f"corrupt zstd payload: {exc}") from exc

    def compress_with(self, dict_id: int, dictionary: Any, data: bytes) -> bytes:
        try:
            pair = self._dict_pair(dict_id, dictionary)
            return (pair[3] if len(data) <= SMALL_DICTIONARY_PAYLOAD else pair[0]).compress(data)
        except self._zstd.ZstdError as exc:  # corrupt dictionary bytes from Redis
            raise CodecError(f"dictionary {dict_id} cannot compress: {exc}") from exc

    def decompress_with(
        self, dict_id: int, dictionary: Any, data: bytes | memoryview, max_size: int
    ) -> bytes:
        try:
            if self._zstd.frame_content_size(data) > max_size:  # as decompress() above
                raise CodecError(f"zstd payload declares more than {max_size} bytes")
            return self._dict_pair(dict_id, dictionary)[1].decompress(data, max_output_size=max_size)
        except self._zstd.ZstdError as exc:
            raise CodecError(f"corrupt zstd payload (dictionary {dict_id}): {exc}") from exc


BUILTIN_COMPRESSORS: dict[str, type[BaseCompressor]] = {
    "none": IdentityCompressor,
    "zlib": ZlibCompressor,
    "zstd": ZstdCompressor,
}


#: Frame flags of the built-in formats: a compressor may use one only if it writes that format (a
#: subclass of its class); flag 3 is zstd with a trained dictionary, written by the codec alone.
#: Anything else would make frames of one format decode as another.
RESERVED_FLAGS: dict[int, type[BaseCompressor] | None] = {
    IdentityCompressor.flag: IdentityCompressor,
    ZlibCompressor.flag: ZlibCompressor,
    ZstdCompressor.flag: ZstdCompressor,
    ZSTD_DICT_FLAG: None,
}
MAX_FLAG = 255  # one byte in the frame header


def reserved_flag_problem(cls: type[BaseCompressor]) -> str:
    """Why ``cls`` may not write frames with its ``flag`` ("" if it may)."""
    flag = getattr(cls, "flag", None)
    if not isinstance(flag, int) or isinstance(flag, bool) or not 0 <= flag <= MAX_FLAG:
        return f"flag must be an integer from {len(RESERVED_FLAGS)} to {MAX_FLAG}, got {flag!r}"
    if flag in RESERVED_FLAGS:
        owner = RESERVED_FLAGS[flag]
        if owner is None or not issubclass(cls, owner):
            what = "zstd with a trained dictionary" if owner is None else f"the built-in {owner.name!r}"
            return (
                f"flag {flag} is reserved for {what} (frames with it would be decoded as that); "
                f"give the compressor a flag from {len(RESERVED_FLAGS)} to {MAX_FLAG}"
            )
    return ""


def compressor_class(name: str) -> type[BaseCompressor]:
    """Resolve a compressor by short name or dotted path; :class:`CodecError` if impossible."""
    cls = BUILTIN_COMPRESSORS.get(name)
    if cls is None:
        if "." not in name:
            raise CodecError(f"unknown compression algorithm {name!r}")
        try:
            cls = import_string(name)
        except ImportError as exc:
            raise CodecError(f"cannot import compressor {name!r}: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, BaseCompressor)):
            raise CodecError(f"{name!r} is not an aicache.codec.BaseCompressor subclass")
    reserved = reserved_flag_problem(cls)
    if reserved:
        raise CodecError(f"{name!r}: {reserved}")
    if cls is ZstdCompressor:
        try:
            import zstandard  # noqa: F401
        except ImportError as exc:
            raise CodecError("zstd needs the 'zstandard' package") from exc
    return cls


@dataclass(frozen=True, slots=True)
class Encoded:
    data: bytes
    payload_size: int  # serialized size before compression
    stored_size: int  # payload size after compression (header excluded)
    compression_used: bool
    compression_seconds: float


class Decoded(NamedTuple):  # a tuple: built on every Redis hit, where a dataclass costs more
    payload: bytes | memoryview  # serialized (uncompressed) JSON bytes
    cached_at: float  # unix seconds
    ttl: int
    compression_used: bool
    meta: dict[str, Any] | None = None  # tags, compute seconds, token usage, model


class ForgedEntry(CodecError):
    """A frame whose signature is missing or does not verify against any signing key."""


class UnknownDictionary(CodecError):
    """A frame compressed with a dictionary this process cannot find (never published, or gone)."""


class Dictionaries(Protocol):
    """Where a codec finds dictionaries by id (``aicache.dictionaries.DictionaryRegistry``)."""

    def get(self, dict_id: int) -> Any: ...


class Codec:
    """Encodes responses into frames and back; one per backend, safe to share between threads.

    ``signing_keys``: the first signs every frame written, any of them verifies (key rotation)."""

    def __init__(
        self,
        algorithm: str = "zstd",
        level: int | None = None,
        threshold: int = 256,
        signing_keys: tuple[bytes, ...] = (),
        dictionaries: Dictionaries | None = None,
    ) -> None:
        self.compressor = compressor_class(algorithm)(level)
        self.threshold = threshold
        self.signing_keys = tuple(signing_keys)
        self.dictionaries = dictionaries
        self._decoders: dict[int, BaseCompressor] = {}
        for cls in BUILTIN_COMPRESSORS.values():
            try:
                self._decoders[cls.flag] = (
                    self.compressor if cls is type(self.compressor) else compressor_class(cls.name)()
                )
            except CodecError:  # zstandard missing: such frames read as corrupt
                continue
        self._decoders[self.compressor.flag] = self.compressor
        zstd = self._decoders.get(ZstdCompressor.flag)
        self._zstd: ZstdCompressor | None = zstd if isinstance(zstd, ZstdCompressor) else None

    @staticmethod
    def serialize(value: Any) -> bytes:
        return orjson.dumps(value)

    @staticmethod
    def deserialize(payload: bytes) -> Any:
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise CodecError(f"payload is not JSON: {exc}") from exc

    def encode(
        self,
        payload: bytes,
        ttl: int,
        cached_at: float | None = None,
        meta: dict[str, Any] | None = None,
        dictionary: tuple[int, Any] | None = None,
    ) -> Encoded:
        """Frame already-serialized ``payload``; compress it when it reaches the threshold, with
        ``dictionary`` (``(id, ZstdCompressionDict)``) when one is given and zstd is available."""
        started = time.perf_counter()
        body = payload
        flag = 0
        if len(payload) >= self.threshold:
            if dictionary is not None and self._zstd is not None and len(payload) <= DICTIONARY_MAX_PAYLOAD:
                dict_id, zdict = dictionary
                packed = DICT_ID.pack(dict_id) + self._zstd.compress_with(dict_id, zdict, payload)
                if len(packed) < len(payload):
                    body, flag = packed, ZSTD_DICT_FLAG
            elif self.compressor.flag != 0:
                packed = self.compressor.compress(payload)
                if len(packed) < len(payload):
                    body, flag = packed, self.compressor.flag
        elapsed = time.perf_counter() - started if flag else 0.0
        stamp = int((time.time() if cached_at is None else cached_at) * 1000)
        if meta:
            packed_meta = orjson.dumps(meta)
            if len(packed_meta) > MAX_META_BYTES:
                raise ValueError(f"entry metadata is {len(packed_meta)} bytes; at most {MAX_META_BYTES}")
            magic = MAGIC_META | (SIGNED if self.signing_keys else 0)
            header = HEADER.pack(magic, flag, stamp, ttl) + META_LENGTH.pack(len(packed_meta))
            header += packed_meta
        else:
            header = HEADER.pack(MAGIC | (SIGNED if self.signing_keys else 0), flag, stamp, ttl)
        data = header + body
        if self.signing_keys:
            data += hmac.digest(self.signing_keys[0], data, "sha256")  # one-shot: ~1 us, not ~3
        return Encoded(data, len(payload), len(body), flag != 0, elapsed)

    def decode(self, data: bytes) -> Decoded:
        if not isinstance(data, bytes) or len(data) < HEADER_SIZE:
            raise CodecError("entry is shorter than the frame header")
        magic, flag, stamp, ttl = HEADER.unpack_from(data)
        if magic & SIGNED:
            data = self._verified(data)
            magic &= ~SIGNED
        elif self.signing_keys and magic in (MAGIC, MAGIC_META):
            raise ForgedEntry("entry is not signed, and this cache signs its entries")
        start, meta = HEADER_SIZE, None
        if magic == MAGIC_META:
            meta, start = read_meta(data)
        elif magic != MAGIC:
            raise CodecError(f"unknown frame magic 0x{magic:02x} (not an aicache entry)")
        body = memoryview(data)[start:]  # no copy of the payload
        if flag == ZSTD_DICT_FLAG:
            return Decoded(self._with_dictionary(body), stamp / 1000.0, ttl, True, meta)
        decoder = self._decoders.get(flag)
        if decoder is None:
            raise CodecError(f"unknown codec flag {flag}")
        try:
            payload = decoder.decompress(body, MAX_DECOMPRESSED_BYTES) if flag else body
        except zlib.error as exc:
            raise CodecError(f"corrupt zlib payload: {exc}") from exc
        return Decoded(payload, stamp / 1000.0, ttl, flag != 0, meta)

    def _with_dictionary(self, body: memoryview) -> bytes:
        if len(body) < DICT_ID.size:
            raise CodecError("dictionary frame is shorter than its dictionary id")
        if self._zstd is None:
            raise CodecError("entry needs zstd (the 'zstandard' package) and a dictionary")
        (dict_id,) = DICT_ID.unpack_from(body)
        zdict = self.dictionaries.get(dict_id) if self.dictionaries is not None else None
        if zdict is None:
            raise UnknownDictionary(f"entry was compressed with dictionary {dict_id}, which is not available")
        return self._zstd.decompress_with(dict_id, zdict, body[DICT_ID.size :], MAX_DECOMPRESSED_BYTES)

    def _verified(self, data: bytes) -> bytes:
        """The signed frame without its signature, if a key verifies it (a reader without keys
        takes signed frames as they are: signing protects the caches that sign)."""
        if len(data) < HEADER_SIZE + SIGNATURE_SIZE:
            raise ForgedEntry("signed entry is shorter than its signature")
        body, tag = data[:-SIGNATURE_SIZE], data[-SIGNATURE_SIZE:]
        if self.signing_keys and not any(
            hmac.compare_digest(hmac.digest(key, body, "sha256"), tag) for key in self.signing_keys
        ):
            raise ForgedEntry("entry signature does not verify against any signing key")
        return body

    def loads(self, data: bytes) -> Any:
        """Decode a frame all the way to the Python value."""
        return self.deserialize(self.decode(data).payload)


def read_meta(data: bytes) -> tuple[dict[str, Any], int]:
    if len(data) < HEADER_SIZE + META_LENGTH.size:
        raise CodecError("entry is shorter than its metadata header")
    (length,) = META_LENGTH.unpack_from(data, HEADER_SIZE)
    start = HEADER_SIZE + META_LENGTH.size
    if len(data) < start + length:
        raise CodecError("entry metadata is truncated")
    try:
        meta = orjson.loads(data[start : start + length])
    except orjson.JSONDecodeError as exc:
        raise CodecError(f"entry metadata is not JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise CodecError("entry metadata is not an object")
    return meta, start + length


class SafeSerializer:
    """django-redis ``SERIALIZER`` for the plain cache API on this backend: orjson, never pickle.

    Values must be JSON-typed (dict, list, str, int, float, bool, None); others raise TypeError.
    """

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options

    def dumps(self, value: Any) -> bytes:
        try:
            return orjson.dumps(value)
        except TypeError as exc:
            raise TypeError(f"aicache stores JSON-typed values only: {exc}") from exc

    def loads(self, value: bytes) -> Any:
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise CodecError(f"cached value is not JSON: {exc}") from exc
