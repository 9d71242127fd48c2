"""The demo company's pricing set-up: loyalty tiers (and who is in them), a few rate rules and promotion codes."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

LOYALTY_TIERS = (("silver", "Silver", 1, "5"), ("gold", "Gold", 2, "10"), ("platinum", "Platinum", 3, "15"))


def load_pricing(session: Session, present: datetime) -> dict[str, int]:
    """Add the demo's tiers, rules and promotions (after the business tables were filled); counts of each."""
    for code, name, rank, pct in LOYALTY_TIERS:
        session.execute(text("INSERT INTO loyalty_tiers (code, name, rank, discount_pct) VALUES (:c, :n, :r, :p)"),
                        {"c": code, "n": name, "r": rank, "p": pct})
    # Deterministic membership: every 10th customer silver, every 25th gold, every 100th platinum.
    members = session.execute(text("""
        UPDATE users SET loyalty_tier = CASE WHEN id % 100 = 0 THEN 'platinum' WHEN id % 25 = 0 THEN 'gold'
                                             ELSE 'silver' END
        WHERE role = 'customer' AND id % 10 = 0
    """)).rowcount
    year = present.year
    rules = [
        ("Weekend rate", None, None, None, "1.1500", "0", None, None, 100, "weekend"),
        ("A week or more", None, None, None, "0.9000", "0", 7, 13, 200, "all"),
        ("Two weeks or more", None, None, None, "0.8000", "0", 14, None, 200, "all"),
        ("Summer season", date(year, 6, 15), date(year, 8, 31), None, "1", "12", None, None, 50, "all"),
        ("Christmas and New Year", date(year, 12, 20), date(year + 1, 1, 3), None, "1", "20", None, None, 50, "all"),
    ]
    for name, start, end, type_code, modifier, surcharge, low, high, priority, days in rules:
        session.execute(text("""
            INSERT INTO pricing_rules (name, start_date, end_date, vehicle_type_id, daily_rate_modifier,
                                       seasonal_surcharge_pct, min_days, max_days, priority, days_of_week)
            VALUES (:name, :start, :end, (SELECT id FROM vehicle_types WHERE code = :type), :modifier, :surcharge,
                    :low, :high, :priority, :days)
        """), {"name": name, "start": start, "end": end, "type": type_code, "modifier": modifier,
               "surcharge": surcharge, "low": low, "high": high, "priority": priority, "days": days})
    promotions = [
        ("WELCOME10", "10% off a first rental", "percent", "10", None, 1, None),
        ("WEEK25", "£25 off a rental of a week or more", "fixed", "25", 500, None, 7),
        ("LASTFEW", "15% off, only three to give away", "percent", "15", 3, 1, None),
    ]
    for code, description, kind, value, limit, per_customer, min_days in promotions:
        session.execute(text("""
            INSERT INTO promotions (code, description, discount_kind, discount_value, currency, valid_from,
                                    valid_until, max_redemptions, max_per_customer, min_days)
            VALUES (:code, :description, :kind, :value, 'GBP', :start, :end, :limit, :per_customer, :min_days)
        """), {"code": code, "description": description, "kind": kind, "value": value,
               "start": present - timedelta(days=30), "end": present + timedelta(days=180), "limit": limit,
               "per_customer": per_customer, "min_days": min_days})
    return {"loyalty_tiers": len(LOYALTY_TIERS), "loyalty_members": members, "pricing_rules": len(rules),
            "promotions": len(promotions)}
