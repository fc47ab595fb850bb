"""A short integrator scenario, written only against the generated client (`clinic_client`).

Creates a token for the integration, a patient, a candidacy screening, a provider with
working hours, a pump with a dose programme and a fill, reads the refill forecast, books a
refill in one of the suggested slots and finds the booking's confirmation in the outbox.
Every step checks real values; any mismatch exits non-zero.

Usage: python scenario.py --base-url http://127.0.0.1:8080 --token clinic_…
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import uuid
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from clinic_client import AuthenticatedClient, Client
from clinic_client.api.operations import get_health
from clinic_client.api.patients import create_patient
from clinic_client.api.pumps import (
    create_fill,
    create_program,
    create_pump,
    get_pump_forecast,
    list_drugs,
    list_pump_models,
    list_refill_slots,
    list_refill_worklist,
)
from clinic_client.api.reminders import list_reminders
from clinic_client.api.scheduling import create_appointment, create_provider, get_availability
from clinic_client.api.screening import create_screening, list_screening_criteria
from clinic_client.api.tokens import create_token
from clinic_client.models import (
    Answer,
    AnswerRequest,
    AppointmentResponse,
    AppointmentStatus,
    AvailabilityResponse,
    Binding,
    CreateAppointmentRequest,
    CreatedTokenResponse,
    CreateFillRequest,
    CreatePatientRequest,
    CreateProgramRequest,
    CreateProviderRequest,
    CreatePumpRequest,
    CreateScreeningRequest,
    CreateTokenRequest,
    CriterionList,
    DrugList,
    FillOutcomeResponse,
    ForecastResponse,
    Health,
    HoursDto,
    MassUnit,
    Outcome,
    PageReminderResponse,
    PatientResponse,
    Problem,
    ProgramOutcome,
    ProviderResponse,
    PumpModelList,
    ProgrammeKind,
    PumpResponse,
    RefillSlots,
    ScreeningResponse,
    Scope,
    WeekdayName,
    Worklist,
)
from clinic_client.types import UNSET, Response

CLINIC_ZONE = ZoneInfo("America/Chicago")  # CLINIC_TIME_ZONE as run.sh starts the server
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
T = TypeVar("T")


class ScenarioError(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise ScenarioError(message)


def expect(what: str, response: Response[Any], status: int, kind: type[T]) -> T:
    """The typed body of a response with the expected status, or a failure naming the problem."""
    parsed = response.parsed
    if response.status_code == status and isinstance(parsed, kind):
        return parsed
    if isinstance(parsed, Problem):
        fields = ""
        if parsed.errors:
            fields = "; " + ", ".join(f"{e.field}: {e.code} ({e.message})" for e in parsed.errors)
        got = f"problem {parsed.code}: {parsed.detail}{fields}"
    else:
        got = f"{type(parsed).__name__}: {response.content[:500]!r}"
    raise ScenarioError(f"{what}: expected {status} {kind.__name__}, got {int(response.status_code)} {got}")


def run(base_url: str, admin_token: str) -> list[str]:
    summary: list[str] = []
    run_id = uuid.uuid4().hex[:8]
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    today_clinic = now.astimezone(CLINIC_ZONE).date()

    health = expect("get_health", get_health.sync_detailed(client=Client(base_url=base_url)), 200, Health)
    check(health.status == "ok", f"healthz says {health.status!r}")

    # A token for this integration with just the scopes it needs.
    admin = AuthenticatedClient(base_url=base_url, token=admin_token, raise_on_unexpected_status=True)
    scopes = [
        Scope.PATIENTSREAD,
        Scope.PATIENTSWRITE,
        Scope.SCHEDULINGWRITE,
        Scope.PUMPSREAD,
        Scope.PUMPSWRITE,
        Scope.REMINDERSADMIN,
    ]
    token = expect(
        "create_token",
        create_token.sync_detailed(
            client=admin, body=CreateTokenRequest(name=f"generated-client-{run_id}", scopes=scopes)
        ),
        201,
        CreatedTokenResponse,
    )
    check(set(token.scopes) == set(scopes), f"token scopes {token.scopes} != {scopes}")
    check(token.secret.startswith("clinic_"), "token secret does not start with clinic_")
    api = AuthenticatedClient(base_url=base_url, token=token.secret, raise_on_unexpected_status=True)
    summary.append(f"token     {token.id} ({len(token.scopes)} scopes)")

    # Patient.
    patient = expect(
        "create_patient",
        create_patient.sync_detailed(
            client=api,
            body=CreatePatientRequest(
                given_name="Ann",
                family_name=f"Lee-{run_id}",
                email=f"ann.lee.{run_id}@example.org",
                phone="(312) 555-0123",
                date_of_birth=dt.date(1961, 4, 23),
                email_consent=True,
                time_zone="America/Chicago",
            ),
        ),
        201,
        PatientResponse,
    )
    check(patient.phone == "+13125550123", f"phone not normalised to E.164: {patient.phone!r}")
    check(patient.version == 1, f"new patient has version {patient.version}")
    summary.append(f"patient   {patient.id} {patient.given_name} {patient.family_name}")

    # Candidacy screening: every active criterion answered yes is ready for an implant.
    criteria = expect(
        "list_screening_criteria", list_screening_criteria.sync_detailed(client=api), 200, CriterionList
    )
    active = [c for c in criteria.items if c.active]
    check(len(active) >= 8, f"expected the 8 seeded criteria, got {[c.code for c in active]}")
    screening = expect(
        "create_screening",
        create_screening.sync_detailed(
            patient.id,
            client=api,
            body=CreateScreeningRequest(
                clinician="Dr. R. Alvarez",
                screened_on=today_clinic,
                answers=[AnswerRequest(criterion=c.code, answer=Answer.YES) for c in active],
            ),
        ),
        201,
        ScreeningResponse,
    )
    check(screening.result == Outcome.READY_FOR_IMPLANT, f"screening result {screening.result}")
    check(not screening.failed_criteria and not screening.unknown_criteria, "screening lists open criteria")
    check(len(screening.answers) == len(active), "screening does not keep every answer")
    summary.append(f"screening {screening.id} {screening.result.value}")

    # Provider working 08:00-17:00 every day on the clinic's clock.
    provider = expect(
        "create_provider",
        create_provider.sync_detailed(
            client=api,
            body=CreateProviderRequest(
                name=f"Nurse Kim Lo {run_id}",
                role="refill nurse",
                time_zone="America/Chicago",
                hours=[HoursDto(weekday=WeekdayName(d), start="08:00", end="17:00") for d in WEEKDAYS],
            ),
        ),
        201,
        ProviderResponse,
    )
    check(provider.active and len(provider.hours) == 7, f"provider hours {provider.hours}")
    summary.append(f"provider  {provider.id} {provider.name}")

    # Pump: a seeded model, implanted 60 days ago.
    models = expect("list_pump_models", list_pump_models.sync_detailed(client=api), 200, PumpModelList)
    codes = {m.code: m for m in models.items}
    check(
        {"synchromed-ii-20", "synchromed-ii-40", "prometra-20", "prometra-ii-40"} <= set(codes),
        f"seeded pump models missing: {sorted(codes)}",
    )
    model = codes["synchromed-ii-40"]
    pump = expect(
        "create_pump",
        create_pump.sync_detailed(
            client=api,
            body=CreatePumpRequest(
                patient_id=patient.id,
                model=model.code,
                serial_number=f"GC-{run_id.upper()}",
                implanted_on=today_clinic - dt.timedelta(days=60),
            ),
        ),
        201,
        PumpResponse,
    )
    check(pump.reservoir_ml == model.reservoir_ml, f"pump reservoir {pump.reservoir_ml} != model {model.reservoir_ml}")
    check(pump.forecast.binding == Binding.MISSING_DATA, f"a new pump is {pump.forecast.binding}, not missing_data")
    summary.append(f"pump      {pump.id} {pump.model} {pump.serial_number}")

    # Dose programme: 25 mg a day of morphine at 25 mg/mL is 1 mL a day.
    drugs = expect("list_drugs", list_drugs.sync_detailed(client=api), 200, DrugList)
    morphine = next((d for d in drugs.items if d.code == "morphine"), None)
    check(morphine is not None, f"no seeded morphine in {[d.code for d in drugs.items]}")
    check(morphine.unit == MassUnit.MG, f"morphine unit {morphine.unit}")
    check(morphine.stability_undiluted_days not in (None, UNSET), "morphine has no stability limit")
    program = expect(
        "create_program",
        create_program.sync_detailed(
            pump.id,
            client=api,
            body=CreateProgramRequest(
                effective_at=now - dt.timedelta(hours=2), kind=ProgrammeKind.CONTINUOUS, daily_dose="25"
            ),
        ),
        201,
        ProgramOutcome,
    )
    check(Decimal(program.program.daily_amount) == 25, f"daily amount {program.program.daily_amount}")

    # Fill to the reservoir an hour ago.
    filled_at = now - dt.timedelta(hours=1)
    fill = expect(
        "create_fill",
        create_fill.sync_detailed(
            pump.id,
            client=api,
            body=CreateFillRequest(
                filled_at=filled_at,
                drug="morphine",
                concentration="25",
                concentration_unit="mg/mL",
                volume_ml=pump.reservoir_ml,
                residual_ml="0",
                clinician="R. Alvarez, RN",
            ),
        ),
        201,
        FillOutcomeResponse,
    )
    check(fill.fill.filled_at == filled_at, f"fill time {fill.fill.filled_at} != {filled_at}")
    check(fill.fill.stability_days == morphine.stability_undiluted_days, "fill did not get morphine's limit")
    summary.append(f"fill      {fill.fill.id} {fill.fill.volume_ml} mL morphine 25 mg/mL, 25 mg/day")

    # Forecast: 38 usable mL at 1 mL a day; the alarm 38 days after the fill; due 7 days before.
    forecast = expect(
        "get_pump_forecast", get_pump_forecast.sync_detailed(pump.id, client=api), 200, ForecastResponse
    )
    usable = Decimal(pump.reservoir_ml) - Decimal(pump.alarm_ml)
    check(forecast.problems == [], f"forecast problems: {forecast.problems}")
    check(forecast.binding == Binding.VOLUME, f"forecast bound by {forecast.binding}, expected volume")
    check(Decimal(str(forecast.daily_volume_ml)) == 1, f"daily volume {forecast.daily_volume_ml}")
    check(Decimal(forecast.usable_volume_ml) == usable, f"usable volume {forecast.usable_volume_ml} != {usable}")
    expected_alarm = filled_at + dt.timedelta(days=int(usable))
    # The forecast rounds toward an earlier alarm (to the second), so allow a minute before.
    check(
        expected_alarm - dt.timedelta(minutes=1) <= forecast.alarm_at <= expected_alarm,
        f"alarm at {forecast.alarm_at}, expected {expected_alarm} (or up to a minute before)",
    )
    expected_due = expected_alarm.astimezone(CLINIC_ZONE).date() - dt.timedelta(days=forecast.inputs["margin_days"])
    check(forecast.due_date == expected_due, f"due date {forecast.due_date}, expected {expected_due}")
    check(forecast.volume_due == forecast.due_date, "the volume limit is not the due date")
    summary.append(f"forecast  due {forecast.due_date} ({forecast.binding.value}), alarm {forecast.alarm_at}")

    # Refill slots: from 14 days before the due date to its end, all this provider's.
    slots = expect("list_refill_slots", list_refill_slots.sync_detailed(pump.id, client=api), 200, RefillSlots)
    check(slots.due_date == forecast.due_date, f"slots due date {slots.due_date} != {forecast.due_date}")
    check(len(slots.items) > 0, "no refill slots suggested")
    window_start = dt.datetime.combine(forecast.due_date - dt.timedelta(days=14), dt.time(), CLINIC_ZONE)
    window_end = dt.datetime.combine(forecast.due_date + dt.timedelta(days=1), dt.time(), CLINIC_ZONE)
    for s in slots.items:
        check(window_start <= s.start < window_end, f"slot {s.start} outside {window_start}..{window_end}")
        check(s.provider_id == provider.id, f"slot of an unknown provider {s.provider_id}")
    slot = slots.items[0]
    check(slot.end - slot.start == dt.timedelta(minutes=30), f"a refill slot lasts {slot.end - slot.start}")

    # The same slot through availability.
    availability = expect(
        "get_availability",
        get_availability.sync_detailed(
            client=api,
            provider_id=provider.id,
            appointment_type="refill",
            from_=slot.start,
            to=slot.start + dt.timedelta(minutes=15),
        ),
        200,
        AvailabilityResponse,
    )
    offered = [a.start for item in availability.items for a in item.slots]
    check(offered == [slot.start], f"availability offers {offered}, expected [{slot.start}]")

    # Book the refill, and replay it with the same Idempotency-Key.
    key = f"generated-client-{run_id}"
    booking = CreateAppointmentRequest(
        patient_id=patient.id,
        provider_id=slot.provider_id,
        appointment_type="refill",
        start=slot.start,
        note="bring pump card",
    )
    appointment = expect(
        "create_appointment",
        create_appointment.sync_detailed(client=api, body=booking, idempotency_key=key),
        201,
        AppointmentResponse,
    )
    check(appointment.status == AppointmentStatus.BOOKED, f"appointment status {appointment.status}")
    check(appointment.start == slot.start and appointment.end == slot.end, "appointment is not at the slot")
    check(appointment.appointment_type == "refill", f"appointment type {appointment.appointment_type}")
    replay = expect(
        "create_appointment (replay)",
        create_appointment.sync_detailed(client=api, body=booking, idempotency_key=key),
        201,
        AppointmentResponse,
    )
    check(replay.id == appointment.id, f"the replay booked another appointment {replay.id}")
    summary.append(f"refill    {appointment.id} {appointment.local_start} ({appointment.time_zone}) with {slot.provider_name}")

    # The refill worklist shows the booking against the pump.
    worklist = expect(
        "list_refill_worklist",
        list_refill_worklist.sync_detailed(client=api, within_days=60),
        200,
        Worklist,
    )
    entry = next((e for e in worklist.items if e.pump_id == pump.id), None)
    check(entry is not None, "the pump is not on the 60-day refill worklist")
    booked = entry.refill_appointment
    check(booked not in (None, UNSET) and booked.id == appointment.id, f"worklist refill appointment {booked}")

    # Reminders: the booking planned a confirmation for this appointment (the scheduler is off).
    rows = []
    cursor: Any = UNSET
    while True:
        page = expect(
            "list_reminders",
            list_reminders.sync_detailed(client=api, patient_id=patient.id, limit=100, cursor=cursor),
            200,
            PageReminderResponse,
        )
        rows.extend(page.items)
        if page.next_cursor in (None, UNSET):
            break
        cursor = page.next_cursor
    confirmations = [
        r for r in rows if r.kind == "appointment_confirmation" and r.subject_id == appointment.id
    ]
    check(len(confirmations) == 1, f"expected one confirmation for {appointment.id}, got {[(r.kind, r.subject_id) for r in rows]}")
    confirmation = confirmations[0]
    check(confirmation.subject_type == "appointment", f"confirmation subject {confirmation.subject_type}")
    check(confirmation.patient_id == patient.id, f"confirmation for patient {confirmation.patient_id}")
    check(confirmation.state == "pending", f"confirmation state {confirmation.state}")
    check(confirmation.refers_to == appointment.start, f"confirmation refers to {confirmation.refers_to}")
    kinds = sorted({r.kind for r in rows})
    summary.append(f"reminders {len(rows)} rows for the patient ({', '.join(kinds)}); confirmation {confirmation.id} {confirmation.state}")
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--token", required=True, help="an admin token")
    args = parser.parse_args()
    try:
        summary = run(args.base_url, args.token)
    except ScenarioError as e:
        print(f"scenario FAILED: {e}", file=sys.stderr)
        return 1
    print("\n".join(summary))
    print("scenario passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
