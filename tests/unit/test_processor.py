"""The reference text processor: real (deterministic) work over real text, LLM-shaped answers."""

import time

import pytest

from aicache.bench.payloads import llm_response, prose
from aicache.processor import LocalTextProcessor, get_processor, process_cached

TEXT = (
    "Caching makes repeated answers fast and cheap. Errors in the model are costly and slow to fix. "
    "A reliable cache improves latency for every customer. The cache stores answers in Redis. "
    "Redis serves answers quickly, and the memory tier serves them even faster."
)


@pytest.fixture
def proc():
    return LocalTextProcessor(latency=0)


def test_summarize_picks_real_sentences(proc):
    out = proc.process(TEXT, "summarize", {"max_sentences": 2})
    assert out["sentences_used"] == 2
    assert all(s.strip() + ("" if s.endswith(".") else ".") in TEXT for s in out["summary"].split(". ") if s)
    assert out["usage"]["total_tokens"] == out["usage"]["prompt_tokens"] + out["usage"]["completion_tokens"]
    assert out["operation"] == "summarize" and out["model"]


def test_sentiment_reads_the_words(proc):
    assert proc.process("Great, fast, reliable and helpful.", "sentiment")["sentiment"] == "positive"
    assert proc.process("Slow, broken, costly and wrong.", "sentiment")["sentiment"] == "negative"
    assert proc.process("The table has four legs.", "sentiment")["sentiment"] == "neutral"


def test_key_points_questions_and_answers(proc):
    points = proc.process(TEXT, "key_points", {"count": 3})["key_points"]
    assert [p["keyword"] for p in points][:2] == ["answers", "cache"]
    assert all(p["point"] in TEXT for p in points)
    questions = proc.process(TEXT, "questions", {"count": 2})["questions"]
    assert questions[0] == "What does the text say about answers?" and len(questions) == 3
    qa = proc.process(TEXT, "qa", question="Where does the cache store answers?")
    assert qa["answer"] == "The cache stores answers in Redis." and qa["confidence"] >= 0.5


def test_deterministic(proc):
    text = prose(2000, seed=3)
    assert proc.process(text, "key_points") == proc.process(text, "key_points")


@pytest.mark.parametrize(
    "args,match",
    [(("", "summarize"), "text"), ((TEXT, "translate"), "operation"), ((TEXT, "qa"), "question")],
)
def test_bad_input(proc, args, match):
    with pytest.raises(ValueError, match=match):
        proc.process(*args)
    with pytest.raises(ValueError, match="latency"):
        LocalTextProcessor(latency=-1)


def test_latency_is_simulated():
    started = time.perf_counter()
    LocalTextProcessor(latency=0.05).process(TEXT, "sentiment")
    assert time.perf_counter() - started >= 0.05


def test_pluggable_processor_and_cached_path(settings, ai_cache):
    settings.AICACHE_TEXT_PROCESSOR = {
        "CLASS": "aicache.processor.LocalTextProcessor",
        "OPTIONS": {"latency": 0},
    }
    assert get_processor().latency == 0
    first = process_cached(TEXT, "summarize", {"max_sentences": 1})
    second = process_cached(TEXT, "summarize", {"max_sentences": 1})
    assert (first["cache_hit"], second["cache_hit"]) == (False, True)
    assert second["summary"] == first["summary"]


def test_payloads_are_prose_of_the_asked_size():
    for n in (100, 5000, 50000):
        text = prose(n, seed=n)
        assert len(text) == n and text.count(" ") > n / 12
    assert abs(len(__import__("orjson").dumps(llm_response(5000))) - 5000) < 300
