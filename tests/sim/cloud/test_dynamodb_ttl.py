"""The simulated DynamoDB's time to live: expired items are deleted, but only ``TTL_LAG`` after
their expiry (DynamoDB deletes them "typically within a few days"), so a reader that filters
on the expiry itself sees the same answers either way."""

from __future__ import annotations

from scaler.sim.cloud.dynamodb import TTL_LAG, TTL_SWEEP, Dynamodb


def _item(name: str, expires: dict[str, str] | None) -> dict[str, dict[str, str]]:
    item = {"name": {"S": name}}
    if expires is not None:
        item["expires"] = expires
    return item


async def test_an_expired_item_is_deleted_only_after_the_lag() -> None:
    now = [1_000_000.0]
    db = Dynamodb(clock=lambda: now[0])
    db.table("leases", ttl="expires")
    for item in (
        _item("old", {"N": "999000"}),
        _item("text", {"S": "999000"}),  # not a number: never expires
        _item("none", None),
    ):
        await db.put_item(TableName="leases", Item=item)
    now[0] = 999_000.0 + TTL_LAG - 1.0  # past its expiry, not yet past the lag
    names = {i["name"]["S"] for i in (await db.scan(TableName="leases"))["Items"]}
    assert names == {"old", "text", "none"}
    now[0] += TTL_SWEEP + 2.0
    names = {i["name"]["S"] for i in (await db.scan(TableName="leases"))["Items"]}
    assert names == {"text", "none"}


async def test_without_a_clock_or_a_ttl_attribute_nothing_expires() -> None:
    for db, ttl in ((Dynamodb(), "expires"), (Dynamodb(clock=lambda: 1e12), None)):
        db.table("leases", ttl=ttl)
        await db.put_item(TableName="leases", Item=_item("old", {"N": "1"}))
        assert len((await db.scan(TableName="leases"))["Items"]) == 1
