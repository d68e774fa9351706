"""The single-node integration tests of coherence, invalidation, tags, single flight and fencing,
collected again here so that they run against Sentinel, Redis Cluster and ``buckets`` (the cluster
layout on the plain redis-server; ``real_cache`` and ``workers`` of tests/topologies/conftest.py).
Of the multi-process tests only the stampede runs here (a worker process costs seconds to start);
other processes' tiers are covered in-process by test_cluster.py (a foreign delete on each
primary) and test_sentinel.py (a foreign write on the new master)."""

import pytest

from tests.integration.test_coherence import (  # noqa: F401
    test_fill_check_and_fill_are_one_step,
    test_own_write_then_reads_fill_from_redis_then_serve_from_memory,
    test_read_invalidate_race_never_fills_stale,
    test_writes_after_an_invalidation_are_indexed_afresh,
)
from tests.integration.test_invalidation_races import (  # noqa: F401
    test_a_fault_midway_through_a_drain_orphans_nothing,
    test_count_by_operation_is_exact_after_a_fault_midway,
    test_count_tags_sees_a_tag_drain_a_fault_left_half_done,
    test_invalidate_all_never_leaves_an_unindexed_entry,
    test_invalidation_defeats_a_compute_already_in_flight,
    test_invalidation_of_another_operation_does_not_fence,
    test_own_invalidation_wins_against_a_racing_read,
    test_short_hex_pattern_removes_nothing_on_real_redis,
    test_write_during_an_operation_drain_survives,
)
from tests.integration.test_redis_backend import (  # noqa: F401
    test_invalidation_on_real_redis,
    test_round_trip_compression_and_ttl,
)
from tests.integration.test_single_flight import (  # noqa: F401
    test_cache_controls,
    test_failing_compute_shared_in_process_not_retried_by_each_waiter,
    test_five_concurrent_calls_one_miss_four_coalesced,
    test_no_store_never_reads_a_stored_value,
    test_stampede_32_threads_3_processes_one_compute,
)
from tests.integration.test_tags import (  # noqa: F401
    test_a_compute_in_flight_with_the_tag_is_not_cached,
    test_a_key_rewritten_without_a_tag_is_not_removed_by_it,
    test_a_tag_generation_left_with_a_ttl_by_an_earlier_version_loses_it,
    test_counts_are_exact_when_an_entry_has_several_of_the_tags,
    test_other_tags_do_not_fence,
    test_tag_generations_are_swept_not_expired,
    test_tag_index_is_swept_with_its_entries,
    test_tags_on_every_write_path,
)

pytestmark = pytest.mark.integration
