//! The plans a user can be on: Free (the credits every account gets at sign-up) and the paid
//! plans sold through Stripe Checkout. Paid plans come from configuration
//! (`FMU_GATEWAY_PLANS`) so an operator can change prices without a new build.

use serde::Deserialize;

use crate::domain::ids::Credits;

/// The id of the plan every account starts on.
pub const FREE: &str = "free";

/// One plan as shown on the billing page and sent to Stripe.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Stable id used in URLs, the API and Stripe metadata, e.g. `pro`.
    pub id: String,
    pub name: String,
    pub description: String,
    /// Credits granted by one purchase (for Free: at sign-up).
    pub credits: Credits,
    /// Price in the currency's smallest unit (cents); 0 for Free.
    pub amount_cents: i64,
    /// ISO currency code, lower case as Stripe writes it.
    pub currency: String,
}

impl Plan {
    /// The price for people, e.g. `$49`.
    pub fn price(&self) -> String {
        money(self.amount_cents, &self.currency)
    }
}

/// An amount for people: `$49`, `$49.50`, `€12.50`, `1200.00 JPY`… (two decimals, which is
/// right for the currencies we sell in).
pub fn money(cents: i64, currency: &str) -> String {
    let (whole, cents) = (cents / 100, cents % 100);
    let number = if cents == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{cents:02}")
    };
    match currency {
        "usd" => format!("${number}"),
        "eur" => format!("€{number}"),
        "gbp" => format!("£{number}"),
        other => format!("{number} {}", other.to_uppercase()),
    }
}

/// All plans: Free first, then the paid ones in the order configured.
#[derive(Clone, Debug)]
pub struct Plans {
    free: Plan,
    paid: Vec<Plan>,
}

impl Plans {
    /// Free with `free_credits`, and the paid plans given (checked).
    pub fn new(free_credits: Credits, paid: Vec<Plan>) -> Result<Plans, String> {
        let mut seen = std::collections::HashSet::new();
        for p in &paid {
            let id_ok = !p.id.is_empty()
                && p.id.len() <= 32
                && p.id.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                });
            if !id_ok {
                return Err(format!(
                    "plan id {:?}: use 1–32 lower-case letters, digits, '-' or '_'",
                    p.id
                ));
            }
            if p.id == FREE {
                return Err(
                    "plan id \"free\" is reserved (set FMU_GATEWAY_FREE_CREDITS instead)".into(),
                );
            }
            if !seen.insert(p.id.as_str()) {
                return Err(format!("plan id {:?} appears twice", p.id));
            }
            if p.credits == Credits::ZERO || p.amount_cents <= 0 {
                return Err(format!(
                    "plan {:?}: credits and amount_cents must be positive",
                    p.id
                ));
            }
            if p.currency.len() != 3 || !p.currency.bytes().all(|b| b.is_ascii_lowercase()) {
                return Err(format!(
                    "plan {:?}: currency must be a three-letter lower-case ISO code such as \"usd\"",
                    p.id
                ));
            }
            if p.name.trim().is_empty() {
                return Err(format!("plan {:?}: name must not be empty", p.id));
            }
        }
        Ok(Plans {
            free: Plan {
                id: FREE.into(),
                name: "Free".into(),
                description: format!("{free_credits} credits when you sign up"),
                credits: free_credits,
                amount_cents: 0,
                currency: "usd".into(),
            },
            paid,
        })
    }

    /// Parses the JSON list of paid plans (`FMU_GATEWAY_PLANS`).
    pub fn from_json(free_credits: Credits, json: &str) -> Result<Plans, String> {
        let paid: Vec<Plan> = serde_json::from_str(json).map_err(|e| {
            format!(
                "expected a JSON list of {{id, name, description, credits, amount_cents, currency}}: {e}"
            )
        })?;
        Plans::new(free_credits, paid)
    }

    /// The default offer: Pro, 120 credits for $49; Enterprise, 600 credits for $199.
    pub fn defaults(free_credits: Credits) -> Plans {
        let plan = |id: &str, name: &str, description: &str, credits: u32, amount_cents| Plan {
            id: id.into(),
            name: name.into(),
            description: description.into(),
            credits: Credits::from(credits),
            amount_cents,
            currency: "usd".into(),
        };
        Plans::new(
            free_credits,
            vec![
                plan(
                    "pro",
                    "Pro",
                    "For engineers who simulate every day",
                    120,
                    4900,
                ),
                plan(
                    "enterprise",
                    "Enterprise",
                    "For teams and CI pipelines",
                    600,
                    19900,
                ),
            ],
        )
        .expect("the default plans are valid")
    }

    pub fn free(&self) -> &Plan {
        &self.free
    }

    /// The plans that can be bought.
    pub fn paid(&self) -> &[Plan] {
        &self.paid
    }

    /// A plan by id, Free included.
    pub fn get(&self, id: &str) -> Option<&Plan> {
        if id == FREE {
            Some(&self.free)
        } else {
            self.paid.iter().find(|p| p.id == id)
        }
    }

    /// The plan of the newest purchase still in force (`None`: Free). A plan since removed
    /// from the configuration shows as Free.
    pub fn current(&self, purchased: Option<&str>) -> &Plan {
        purchased.and_then(|id| self.get(id)).unwrap_or(&self.free)
    }

    /// A plan that can be bought, or a message listing the ones that can.
    pub fn purchasable(&self, id: &str) -> Result<&Plan, String> {
        self.paid.iter().find(|p| p.id == id).ok_or_else(|| {
            let ids: Vec<&str> = self.paid.iter().map(|p| p.id.as_str()).collect();
            format!(
                "there is no plan {id:?} to buy; choose one of: {}",
                ids.join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_published_offer() {
        let plans = Plans::defaults(Credits::from(25u32));
        assert_eq!(plans.free().credits.get(), 25);
        let pro = plans.get("pro").unwrap();
        assert_eq!(
            (pro.credits.get(), pro.amount_cents, pro.price().as_str()),
            (120, 4900, "$49")
        );
        let ent = plans.get("enterprise").unwrap();
        assert_eq!((ent.credits.get(), ent.amount_cents), (600, 19900));
        assert!(plans.purchasable("free").is_err());
        assert!(
            plans
                .purchasable("gold")
                .unwrap_err()
                .contains("pro, enterprise")
        );
    }

    #[test]
    fn configured_plans_are_checked() {
        let ok = r#"[{"id":"team","name":"Team","description":"d","credits":50,"amount_cents":1250,"currency":"eur"}]"#;
        let plans = Plans::from_json(Credits::from(10u32), ok).unwrap();
        assert_eq!(plans.get("team").unwrap().price(), "€12.50");
        assert!(plans.get("pro").is_none());
        for bad in [
            r#"[{"id":"free","name":"F","description":"","credits":1,"amount_cents":1,"currency":"usd"}]"#,
            r#"[{"id":"a","name":"A","description":"","credits":0,"amount_cents":1,"currency":"usd"}]"#,
            r#"[{"id":"a","name":"A","description":"","credits":-5,"amount_cents":1,"currency":"usd"}]"#,
            r#"[{"id":"a","name":"A","description":"","credits":1,"amount_cents":1,"currency":"US"}]"#,
            r#"[{"id":"A b","name":"A","description":"","credits":1,"amount_cents":1,"currency":"usd"}]"#,
            r#"[{"id":"a","name":"A","description":"","credits":1,"amount_cents":1,"currency":"usd","x":1}]"#,
            r#"{"id":"a"}"#,
        ] {
            assert!(
                Plans::from_json(Credits::from(10u32), bad).is_err(),
                "{bad}"
            );
        }
        let twice = r#"[{"id":"a","name":"A","description":"","credits":1,"amount_cents":1,"currency":"usd"},
                        {"id":"a","name":"A","description":"","credits":1,"amount_cents":1,"currency":"usd"}]"#;
        assert!(
            Plans::from_json(Credits::from(10u32), twice)
                .unwrap_err()
                .contains("twice")
        );
    }
}
