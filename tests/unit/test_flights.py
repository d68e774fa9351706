"""aicache.singleflight.Flights: a leader alone builds no event and no copy; followers get both."""

import threading

import orjson

from aicache.singleflight import Flights


def test_a_leader_alone_builds_neither_the_event_nor_a_copy():
    flights = Flights()
    flight, leader = flights.join("k")
    assert leader and flight.done is None
    flight.value = {"answer": 1}
    flights.finish("k", flight)
    assert flight.done is None and flight.result is None and flight.value is None
    assert len(flights) == 0


def test_followers_get_a_copy_taken_at_finish_before_the_leader_returns():
    flights = Flights()
    flight, leader = flights.join("k")
    same, follower = flights.join("k")
    assert leader and not follower and same is flight
    assert isinstance(flight.done, threading.Event) and not flight.done.is_set()
    value = {"answer": [1, 2]}
    flight.value = value
    flights.finish("k", flight)
    value["answer"].append(3)  # the leader's caller changes its dict afterwards
    assert flight.done.is_set() and orjson.loads(flight.result) == {"answer": [1, 2]}
    again, leads = flights.join("k")  # the finished flight is gone: a new one starts
    assert leads and again is not flight


def test_a_result_that_cannot_be_shared_reaches_followers_as_an_error():
    flights = Flights()
    flight, _ = flights.join("k")
    flights.join("k")
    flight.value = {"not json": object()}
    flights.finish("k", flight)
    assert flight.done.is_set() and flight.result is None
    assert isinstance(flight.error, TypeError)


def test_a_leader_error_is_shared_without_serializing_anything():
    flights = Flights()
    flight, _ = flights.join("k")
    flights.join("k")
    flight.error = RuntimeError("compute failed")
    flights.finish("k", flight)
    assert flight.done.is_set() and flight.result is None
    assert str(flight.error) == "compute failed"
