"""Domain errors: a code and a message for people, Japanese first. No HTTP here (api/ maps them)."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base for expected business outcomes. ``kind`` tells the edge how to answer."""

    kind = "invalid"  # invalid | not_found | conflict | forbidden | gone | unauthorised
    message_ja = "リクエストを処理できませんでした。"
    message_en = "The request could not be processed."

    def __init__(
        self, message_ja: str | None = None, message_en: str | None = None, **extra: Any
    ) -> None:
        if message_ja is not None:
            self.message_ja = message_ja
        if message_en is not None:
            self.message_en = message_en
        self.extra = extra
        super().__init__(self.message_en)

    @property
    def code(self) -> str:
        return type(self).__name__


class NotFound(DomainError):
    kind = "not_found"
    message_ja = "見つかりません。"
    message_en = "Not found."


class UnknownStop(DomainError):
    kind = "invalid"
    message_ja = "その停留所は見つかりません。停留所の一覧から選んでください。"
    message_en = "That stop does not exist. Please choose a stop from the list."


class OutsideServiceArea(DomainError):
    message_ja = "その場所は運行エリアの外です。大川原地区と大野駅周辺でご利用いただけます。"
    message_en = "That place is outside the service area (Ogawara and the Ono Station area)."


class OutsideServiceHours(DomainError):
    message_ja = "その時刻は運行時間外です。"
    message_en = "That time is outside service hours."


class TimeInPast(DomainError):
    message_ja = "過去の時刻は予約できません。"
    message_en = "A time in the past cannot be booked."


class TooFarAhead(DomainError):
    message_ja = "その日はまだ予約を受け付けていません。"
    message_en = "Bookings for that day are not open yet."


class PartyTooLarge(DomainError):
    message_ja = "一度に予約できる人数を超えています。"
    message_en = "The party is larger than one booking can carry."


class SameOriginDestination(DomainError):
    message_ja = "乗る場所と降りる場所が同じです。"
    message_en = "The pick-up and drop-off places are the same."


class NoRideAvailable(DomainError):
    kind = "conflict"
    message_ja = "ご希望の時刻に乗れる車両がありません。"
    message_en = "No vehicle can take this ride at the requested time."


class OfferExpired(DomainError):
    kind = "gone"
    message_ja = "この提案は有効期限が切れました。もう一度検索してください。"
    message_en = "This offer has expired. Please ask for a new one."


class OfferNoLongerAvailable(DomainError):
    kind = "conflict"
    message_ja = "直前に他の予約が入り、この提案は確定できませんでした。もう一度検索してください。"
    message_en = "Another booking took this place just now. Please ask for a new offer."


class IdempotencyConflict(DomainError):
    kind = "conflict"
    message_ja = "同じ Idempotency-Key が別の内容で使われています。"
    message_en = "This Idempotency-Key was already used for a different request."


class InvalidTransition(DomainError):
    kind = "conflict"
    message_ja = "この予約は現在の状態ではその操作ができません。"
    message_en = "This booking cannot do that in its current state."


class Forbidden(DomainError):
    kind = "forbidden"
    message_ja = "この操作の権限がありません。"
    message_en = "You are not allowed to do this."


class Unauthorised(DomainError):
    kind = "unauthorised"
    message_ja = "ログインが必要です。トークンを確認してください。"
    message_en = "Authentication is required. Please check your token."


class InvalidInput(DomainError):
    message_ja = "入力内容に誤りがあります。"
    message_en = "Some of the input is not valid."


class RateLimited(DomainError):
    """Too many attempts; ``retry_after_s`` says when the next one is allowed."""

    kind = "rate_limited"
    message_ja = "操作が多すぎます。しばらく待ってからもう一度お試しください。"
    message_en = "Too many requests. Please wait a moment and try again."


class UnknownRiderCard(DomainError):
    kind = "not_found"
    message_ja = "この乗車カードは登録されていません。カードなしで予約するか、町の窓口にご相談ください。"
    message_en = "This rider card is not registered. Book without it, or ask the town office."


class RiderCardTaken(DomainError):
    kind = "conflict"
    message_ja = "その乗車カードはすでに登録されています。"
    message_en = "That rider card is already registered."



class WrongCode(DomainError):
    message_ja = "確認コードが違うか、有効期限が切れています。"
    message_en = "The code is wrong or has expired."
