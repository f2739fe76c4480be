"""Leaving the consumer group on a graceful stop, as a static member.

A static member (``group.instance.id``) does not leave its group when it closes: that is the
point of static membership, a worker killed and restarted with the same id takes its
partitions back without a rebalance. The other side of it is a worker stopped for good: its
partitions would wait for its session to expire. So a worker stopped by a signal removes its
own instance from the group (LeaveGroup v3+, kafka-python's admin ``remove_group_members``)
after Faust has committed and closed, and its partitions move to the other workers at once.
A worker that crashed or was killed never gets here and keeps its assignment for the session
timeout, waiting for its restart.
"""

from __future__ import annotations

import logging

from infra.settings import Settings

log = logging.getLogger(__name__)


def leave_group(settings: Settings, instance_id: str) -> bool:
    """Remove ``instance_id`` from the workers' group; True when the broker confirmed it."""
    from kafka.admin import KafkaAdminClient, MemberToRemove
    from kafka.errors import KafkaError, NoError

    admin = None
    try:
        admin = KafkaAdminClient(**settings.kafka.kafka_python_kwargs(),
                                 client_id=f"{instance_id}-leave",
                                 request_timeout_ms=5000)
        member = MemberToRemove(group_instance_id=instance_id, reason="worker stopped")
        result = admin.remove_group_members(settings.app_id, [member])
    except (KafkaError, OSError) as exc:  # the partitions then move after the session timeout
        log.warning("could not leave group %s as %s: %s", settings.app_id, instance_id, exc)
        return False
    finally:
        if admin is not None:
            admin.close()
    errors = [err for err in result.values() if err is not NoError]
    if errors:
        log.warning("leaving group %s as %s: %s", settings.app_id, instance_id, errors)
    else:
        log.info("left group %s as %s: its partitions move now", settings.app_id, instance_id)
    return not errors
