"""``fraudstream kafka ...`` and ``fraudstream topics ...``: the broker and the topic map."""

from __future__ import annotations

import typer
from rich.console import Console

from infra.settings import get_settings

console = Console()
kafka_app = typer.Typer(help="Fetch, start, inspect and stop the managed Apache Kafka broker.")
topics_app = typer.Typer(help="The pipeline's topics.")


@kafka_app.command("fetch")
def kafka_fetch() -> None:
    """Resolve the pinned Kafka broker jars from Maven Central into the cache (once)."""
    from infra.kafka_dist import KAFKA_VERSION, fetch_kafka, is_fetched

    cache = get_settings().cache_dir
    if is_fetched(cache):
        console.print(f"Kafka {KAFKA_VERSION} already fetched in {cache}")
        return
    with console.status(f"Resolving Kafka {KAFKA_VERSION} from Maven Central..."):
        libs = fetch_kafka(cache)
    console.print(f"Kafka {KAFKA_VERSION}: {len(list(libs.glob('*.jar')))} jars in {libs}")


@kafka_app.command("up")
def kafka_up(
    port: int = typer.Option(9092, min=1, max=65535, help="Client port on 127.0.0.1."),
    heap_mb: int = typer.Option(1024, min=256, help="Broker JVM heap in MiB."),
    sasl_ssl: bool = typer.Option(
        False, "--sasl-ssl",
        help="SASL_SSL + SCRAM-SHA-512 on a local CA; prints the KAFKA_* variables to export."),
    brokers: int = typer.Option(
        1, min=1, max=9,
        help="1: one node; 3 or more: a KRaft cluster of combined broker+controller nodes on "
             "PORT, PORT+1, ... (replication 3, min.insync.replicas 2)."),
) -> None:
    """Start the managed broker in the background (or reuse the running one); print its address."""
    from infra import service

    if brokers == 2:
        raise typer.BadParameter("a cluster needs 3 nodes or more (a quorum that survives one)",
                                 param_hint="--brokers")
    if brokers > 1:
        from infra.cluster import cluster_up

        if sasl_ssl:
            raise typer.BadParameter("--sasl-ssl is for the single node", param_hint="--brokers")
        if service.status(get_settings().cache_dir) is not None:
            raise typer.BadParameter("the single-node broker runs: `fraudstream kafka down` "
                                     "first", param_hint="--brokers")
        with console.status(f"Starting an Apache Kafka cluster of {brokers} KRaft nodes..."):
            cluster, reused = cluster_up(get_settings().cache_dir, port=port, size=brokers,
                                         heap_mb=min(heap_mb, 512))
        console.print("[yellow]already running[/], reusing it" if reused else
                       f"started Kafka {cluster.version}: {len(cluster.pids)} nodes "
                       f"(pids {', '.join(map(str, cluster.pids))}) under {cluster.home}")
        typer.echo(cluster.bootstrap)
        return

    if sasl_ssl:
        from infra.secure_broker import up_sasl

        with console.status("Starting Apache Kafka with SASL_SSL (KRaft, single node)..."):
            state, env = up_sasl(get_settings().cache_dir, port=port, heap_mb=heap_mb)
        console.print(f"Kafka {state.version} with SASL_SSL/SCRAM-SHA-512 (pid {state.pid}); "
                      f"logs: {state.log_file}")
        for name, value in env.items():
            typer.echo(f"export {name}={value}")
        return

    with console.status("Starting Apache Kafka (KRaft, single node)..."):
        result = service.up(get_settings().cache_dir, port=port, heap_mb=heap_mb)
    if result.reused:
        console.print(f"[yellow]already running[/] (pid {result.state.pid}), reusing it", style="")
    else:
        console.print(f"started Kafka {result.state.version} (pid {result.state.pid}); "
                      f"logs: {result.state.log_file}")
    typer.echo(result.state.bootstrap)


@kafka_app.command("status")
def kafka_status() -> None:
    """Say whether the managed broker runs, where, and whether it answers."""
    from infra import service
    from infra.cluster import cluster_status

    cluster = cluster_status(get_settings().cache_dir)
    if cluster is not None:
        from infra.broker import metadata_ok, pid_alive

        for i, (pid, address) in enumerate(zip(cluster.pids, cluster.bootstrap.split(","),
                                               strict=True), start=1):
            health = ("answers metadata requests" if metadata_ok(address) else
                      "[red]not answering[/]") if pid_alive(pid) else "[red]down[/]"
            console.print(f"Kafka {cluster.version} node {i} at {address}, pid {pid}, {health}")
        return
    state = service.status(get_settings().cache_dir)
    if state is None:
        console.print("no managed broker is running")
        raise typer.Exit(1)
    from infra.broker import metadata_ok
    from infra.secure_broker import probe_kwargs

    answers = metadata_ok(state.bootstrap, **probe_kwargs(get_settings().cache_dir, state.data_dir))
    health = "answers metadata requests" if answers else "[red]not answering[/]"
    console.print(f"Kafka {state.version} at {state.bootstrap}, pid {state.pid}, {health}")
    console.print(f"data: {state.data_dir}\nlog:  {state.log_file}")


@kafka_app.command("down")
def kafka_down() -> None:
    """Stop the managed broker gracefully and wait until its process is gone."""
    from infra import service
    from infra.cluster import cluster_down

    with console.status("Stopping Kafka..."):
        cluster = cluster_down(get_settings().cache_dir)
        state = service.down(get_settings().cache_dir)
    if cluster is not None:
        console.print(f"stopped the Kafka cluster at {cluster.bootstrap}")
    if state is not None:
        console.print(f"stopped Kafka at {state.bootstrap} (pid {state.pid})")
    elif cluster is None:
        console.print("no managed broker was running")


@topics_app.command("create")
def topics_create() -> None:
    """Create the pipeline's topics; existing ones are left as they are."""
    from infra.topics import ensure_topics

    settings = get_settings()
    report = ensure_topics(settings)
    by_name = {spec.name: spec for spec in settings.topics.specs()}
    for name in report.created:
        console.print(f"created  {name} ({by_name[name].partitions} partitions)")
    for name in report.existing:
        console.print(f"exists   {name}")
    console.print(f"{len(report.created)} created, {len(report.existing)} already there")


@topics_app.command("list")
def topics_list() -> None:
    """Show the topic map and the partitions each topic has on the broker."""
    from infra.topics import partition_counts

    settings = get_settings()
    specs = settings.topics.specs()
    counts = partition_counts(settings, [s.name for s in specs])
    for spec in specs:
        have = counts.get(spec.name)
        console.print(f"{spec.name:20} want {spec.partitions:3}  have {have if have else '-'}")


def register(app: typer.Typer) -> None:
    app.add_typer(kafka_app, name="kafka")
    app.add_typer(topics_app, name="topics")
