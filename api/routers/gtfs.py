"""Open data feeds: the static GTFS-JP + GTFS-Flex zip and the two GTFS-Realtime feeds (no login)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from transit.feeds import gtfs
from transit.feeds.realtime import RealtimeFeeds

router = APIRouter(tags=["open data / オープンデータ"])
PROTOBUF = "application/x-protobuf"
# GTFS-RT consumers poll; the feed changes at the latest after RealtimeFeeds.max_age_s.
RT_HEADERS = {"Cache-Control": "max-age=5"}


def _static(request: Request) -> dict[str, bytes]:
    """Today's feed, built once per service day and base URL (the data only changes on a restart)."""
    runtime = request.app.state.runtime
    ref = runtime.reference
    today = runtime.services.clock.now().astimezone(ref.rules.tz).date()
    base = str(request.base_url)
    key = (today, base)
    cache = getattr(request.app.state, "gtfs_static", None)
    if cache is None or cache[0] != key:
        files = gtfs.build_feed(ref, gtfs.FeedMeta.load(runtime.settings.data_dir), today=today, base_url=base)
        cache = (key, files, gtfs.zip_bytes(files))
        request.app.state.gtfs_static = cache
    return cache[1]


def _realtime(request: Request) -> RealtimeFeeds:
    feeds: RealtimeFeeds | None = getattr(request.app.state, "gtfs_realtime", None)
    if feeds is None:
        runtime = request.app.state.runtime
        files = _static(request)
        meta = gtfs.FeedMeta.load(runtime.settings.data_dir)
        ops = runtime.operations
        feeds = RealtimeFeeds(runtime.services, route_id=meta.route_id, feed_version=gtfs.feed_version(files),
                              etas=ops.etas if ops is not None else None)
        runtime.bus.subscribe(feeds.on_events)
        request.app.state.gtfs_realtime = feeds
    return feeds


@router.get("/gtfs/okuma.zip", operation_id="download_gtfs", response_class=Response,
            responses={200: {"content": {"application/zip": {}}, "description": "GTFS-JP + GTFS-Flex zip"}})
async def download_gtfs(request: Request) -> Response:
    """The static feed (GTFS-JP with GTFS-Flex), valid from today for a year. See docs/feeds.md."""
    _static(request)
    return Response(request.app.state.gtfs_static[2], media_type="application/zip",
                    headers={"Content-Disposition": 'attachment; filename="okuma.zip"',
                             "Cache-Control": "max-age=3600"})


@router.get("/gtfs-rt/vehicle-positions", operation_id="gtfs_rt_vehicle_positions", response_class=Response,
            responses={200: {"content": {PROTOBUF: {}}, "description": "GTFS-Realtime FeedMessage"}})
async def vehicle_positions(request: Request) -> Response:
    """Every vehicle on shift: position, occupancy, its on-demand run (FULL_DATASET)."""
    built = await _realtime(request).current()
    return Response(built.vehicle_positions, media_type=PROTOBUF, headers=RT_HEADERS)


@router.get("/gtfs-rt/trip-updates", operation_id="gtfs_rt_trip_updates", response_class=Response,
            responses={200: {"content": {PROTOBUF: {}}, "description": "GTFS-Realtime FeedMessage"}})
async def trip_updates(request: Request) -> Response:
    """Planned times at the stops ahead of each vehicle (stop-based legs only; FULL_DATASET)."""
    built = await _realtime(request).current()
    return Response(built.trip_updates, media_type=PROTOBUF, headers=RT_HEADERS)
