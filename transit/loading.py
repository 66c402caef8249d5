"""Loading the reference data (stops, fleet, shifts) into the database. Safe to run again."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from transit.reference_data import FleetVehicle, ReferenceData
from transit.uow import UnitOfWork
from transit.vehicle import Shift, Vehicle


def shift_segments(fv: FleetVehicle, day: date, tz) -> list[Shift]:  # type: ignore[no-untyped-def]
    """A fleet shift on ``day`` split around its breaks: the planner treats each as one tour."""
    out: list[Shift] = []
    for n, sh in enumerate(fv.shifts_on(day)):
        breaks = sorted(sh.breaks, key=lambda b: b.start_local)
        starts = [sh.start_local, *(br.end_local for br in breaks)]
        ends = [*(br.start_local for br in breaks), sh.end_local]
        for k, (a, b) in enumerate(zip(starts, ends)):
            start = datetime.combine(day, a, tzinfo=tz)
            end = datetime.combine(day, b, tzinfo=tz)
            out.append(Shift(f"{fv.id}:{day.isoformat()}:{n}:{k}", fv.id, start, end))
    return out


async def load_reference(uow: UnitOfWork, ref: ReferenceData, *, today: date, days: int) -> dict[str, int]:
    """Upsert stops and vehicles; lay out shifts for ``days`` days from ``today`` (local)."""
    for s in ref.stops:
        await uow.stops.upsert(
            dict(id=s.stop_id, name_ja=s.name_ja, name_kana=s.name_kana, name_en=s.name_en,
                 lat=s.lat, lon=s.lon, kiosk=s.kiosk, wheelchair=s.wheelchair, zone=s.zone)
        )
    tz = ref.rules.tz
    nshifts = 0
    for fv in ref.fleet:
        depot = await uow.stops.get(fv.depot_stop_id)
        assert depot is not None
        existing = await uow.vehicles.get(fv.id)
        if existing is None:
            v = Vehicle(fv.id, fv.name_ja, fv.name_en, fv.seats, fv.wheelchairs, fv.parcels,
                        fv.depot_stop_id, depot["lat"], depot["lon"])
            await uow.vehicles.add(v)
        else:
            existing.name_ja, existing.name_en = fv.name_ja, fv.name_en
            existing.seats, existing.wheelchairs, existing.parcels = fv.seats, fv.wheelchairs, fv.parcels
            existing.depot_stop_id = fv.depot_stop_id
            await uow.vehicles.save(existing)
        segs: list[Shift] = []
        for k in range(-1, days):
            segs.extend(shift_segments(fv, today + timedelta(days=k), tz))
        await uow.vehicles.replace_shifts(fv.id, segs)
        nshifts += len(segs)
    return {"stops": len(ref.stops), "vehicles": len(ref.fleet), "shifts": nshifts}
