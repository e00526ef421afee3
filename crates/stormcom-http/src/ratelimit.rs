//! Request rate limits: GCRA (a token bucket without a timer) per route class and plan,
//! keyed by the caller: the principal (user or API token) on authenticated routes, the
//! client address on public ones and whenever authentication failed, so an invalid
//! token buys nothing.
//!
//! Two backends. In memory: one `governor` keyed limiter per (class, plan) with
//! DashMap-backed state, idle keys pruned every minute. Shared: one Lua script in Redis
//! (loaded once, then `EVALSHA`), atomic per key, using the Redis clock so every server
//! process sees one budget. **If Redis fails at run time the decision falls back to the
//! in-memory limiter of this process** (neither open nor closed: limits stay enforced per
//! process, the store stays up); each fallback is counted in
//! `stormcom_rate_limit_backend_errors_total` and logged at most every ten seconds.
//!
//! Answers carry the IETF `RateLimit-Policy` / `RateLimit` headers
//! (draft-ietf-httpapi-ratelimit-headers-08+): `"admin_write";q=60;w=30` says the
//! bucket holds 60 requests and refills completely in 30 seconds.

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use governor::clock::Clock;
use governor::middleware::StateInformationMiddleware;
use stormcom_app::{Principal, StoreContext};
use stormcom_domain::{Plan, PlanTable};
use uuid::Uuid;

use crate::problem::ApiError;
use crate::routes::{Access, RouteClass, client_ip};

/// One class's budget per key at the base (free) plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassRate {
    /// Sustained requests per minute.
    pub per_minute: u32,
    /// Requests that may arrive at once.
    pub burst: u32,
}

/// Per-class rates; `None` leaves a class unlimited. `System` (health, OpenAPI) is never
/// limited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    rates: [Option<ClassRate>; RouteClass::ALL.len()],
}

impl Default for RateLimitConfig {
    /// Per key (user, token or address). Logins are few and precious to attackers;
    /// storefront reads are many and mostly served from the microcache.
    fn default() -> Self {
        let rate = |per_minute, burst| Some(ClassRate { per_minute, burst });
        let mut config = Self {
            rates: [None; RouteClass::ALL.len()],
        };
        config.rates[RouteClass::Auth.index()] = rate(30, 10);
        config.rates[RouteClass::AdminRead.index()] = rate(600, 120);
        config.rates[RouteClass::AdminWrite.index()] = rate(120, 60);
        config.rates[RouteClass::StorefrontRead.index()] = rate(1200, 300);
        config.rates[RouteClass::Checkout.index()] = rate(120, 60);
        config.rates[RouteClass::PaymentCallback.index()] = rate(600, 300);
        config
    }
}

impl RateLimitConfig {
    #[must_use]
    pub fn get(&self, class: RouteClass) -> Option<ClassRate> {
        self.rates[class.index()]
    }

    /// Sets a class's rate (`System` stays unlimited).
    pub fn set(&mut self, class: RouteClass, rate: Option<ClassRate>) {
        if class != RouteClass::System {
            self.rates[class.index()] = rate;
        }
    }

    /// Applies `class=PER_MINUTE/BURST` or `class=off` items (comma-separated); a bare
    /// `off` turns every class off.
    pub fn apply(&mut self, spec: &str) -> Result<(), String> {
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            if item == "off" {
                self.rates = [None; RouteClass::ALL.len()];
                continue;
            }
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| format!("'{item}' is not CLASS=PER_MINUTE/BURST or CLASS=off"))?;
            let class = RouteClass::ALL
                .into_iter()
                .find(|c| *c != RouteClass::System && c.as_str() == name.trim())
                .ok_or_else(|| {
                    let names: Vec<_> = RouteClass::ALL[1..].iter().map(|c| c.as_str()).collect();
                    format!("unknown route class '{name}' (one of {})", names.join(", "))
                })?;
            let value = value.trim();
            if value == "off" {
                self.set(class, None);
                continue;
            }
            let (per_minute, burst) = value.split_once('/').unwrap_or((value, value));
            let number = |s: &str| {
                s.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{name}: '{s}' is not a positive whole number"))
            };
            self.set(
                class,
                Some(ClassRate {
                    per_minute: number(per_minute)?,
                    burst: number(burst)?,
                }),
            );
        }
        Ok(())
    }
}

/// Whose budget a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKey {
    User(Uuid),
    Token(Uuid),
    Ip(IpAddr),
    /// No peer address (requests driven in-process): one shared budget.
    Unknown,
}

impl LimitKey {
    #[must_use]
    pub fn of_principal(principal: &Principal) -> Option<Self> {
        match principal {
            Principal::User { user_id, .. } => Some(Self::User(user_id.as_uuid())),
            Principal::ApiToken { token_id, .. } => Some(Self::Token(token_id.as_uuid())),
            Principal::Operator => None,
        }
    }

    /// By client network: an IPv6 client's whole /64 is one budget (as for the login
    /// throttle), so rotating addresses inside it buys nothing.
    #[must_use]
    pub fn of_ip(ip: Option<IpAddr>) -> Self {
        ip.map_or(Self::Unknown, |ip| {
            Self::Ip(stormcom_domain::throttle::client_network(ip))
        })
    }
}

impl fmt::Display for LimitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => write!(f, "u:{}", id.simple()),
            Self::Token(id) => write!(f, "t:{}", id.simple()),
            Self::Ip(IpAddr::V6(net)) => write!(f, "ip:{net}/64"),
            Self::Ip(ip) => write!(f, "ip:{ip}"),
            Self::Unknown => f.write_str("unknown"),
        }
    }
}

/// The answer for one request.
#[derive(Debug, Clone)]
pub struct Decision {
    pub allowed: bool,
    /// Requests left right now (after this one).
    pub remaining: u32,
    /// Allowed: until the bucket is full again. Refused: until the next request may pass.
    pub wait: Duration,
    name: &'static str,
    policy: HeaderValue,
}

static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

impl Decision {
    /// Whole seconds, rounded up (a client that waits this long will get through).
    #[must_use]
    pub fn wait_secs(&self) -> u64 {
        let secs = self.wait.as_secs() + u64::from(self.wait.subsec_nanos() > 0);
        if self.allowed { secs } else { secs.max(1) }
    }

    pub fn apply_headers(&self, headers: &mut HeaderMap) {
        headers.insert(RATELIMIT_POLICY.clone(), self.policy.clone());
        let state = format!("\"{}\";r={};t={}", self.name, self.remaining, self.wait_secs());
        if let Ok(value) = HeaderValue::from_str(&state) {
            headers.insert(RATELIMIT.clone(), value);
        }
    }
}

type Keyed = governor::RateLimiter<
    LimitKey,
    governor::state::keyed::DefaultKeyedStateStore<LimitKey>,
    governor::clock::DefaultClock,
    StateInformationMiddleware,
>;

/// One (class, plan) budget: its parameters and its in-memory limiter.
struct Policy {
    name: &'static str,
    plan: Plan,
    /// Time for one request to be earned back.
    emission: Duration,
    burst: u32,
    header: HeaderValue,
    local: Keyed,
}

impl Policy {
    fn new(class: RouteClass, plan: Plan, rate: ClassRate, multiplier: f64) -> Option<Self> {
        let per_minute = f64::from(rate.per_minute) * multiplier;
        let burst = (f64::from(rate.burst) * multiplier)
            .ceil()
            .clamp(1.0, f64::from(u32::MAX));
        #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "clamped above")]
        let burst = burst as u32;
        let emission = Duration::try_from_secs_f64(60.0 / per_minute)
            .ok()?
            .max(Duration::from_micros(1));
        let quota = governor::Quota::with_period(emission)?.allow_burst(NonZeroU32::new(burst)?);
        let window = (emission * burst).as_secs_f64().ceil();
        let header = HeaderValue::from_str(&format!("\"{}\";q={burst};w={window}", class.as_str())).ok()?;
        Some(Self {
            name: class.as_str(),
            plan,
            emission,
            burst,
            header,
            local: governor::RateLimiter::dashmap(quota).with_middleware::<StateInformationMiddleware>(),
        })
    }

    fn decide_locally(&self, key: &LimitKey) -> Decision {
        match self.local.check_key(key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                self.decision(true, remaining, self.emission * self.burst.saturating_sub(remaining))
            }
            Err(not_until) => self.decision(false, 0, not_until.wait_time_from(self.local.clock().now())),
        }
    }

    fn decision(&self, allowed: bool, remaining: u32, wait: Duration) -> Decision {
        Decision {
            allowed,
            remaining,
            wait,
            name: self.name,
            policy: self.header.clone(),
        }
    }
}

/// GCRA on the Redis clock, in microseconds. Returns {allowed, remaining, wait}: wait is
/// the time until the bucket is full (allowed) or until the next request may pass.
/// The key lives exactly as long as it carries state.
const GCRA_LUA: &str = r"
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000000 + tonumber(now_t[2])
local t = tonumber(ARGV[1])
local tau = t * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat or tat < now then tat = now end
local new_tat = tat + t
if new_tat - now > tau then
  return {0, 0, new_tat - tau - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000))
return {1, math.floor((tau - (new_tat - now)) / t), new_tat - now}
";

/// Hard cap on one Redis decision, reconnects included: a slow Redis must not become a
/// slow store.
const REDIS_DEADLINE: Duration = Duration::from_millis(300);

struct RedisShared {
    connection: redis::aio::ConnectionManager,
    script: redis::Script,
    prefix: String,
    started: Instant,
    /// Seconds since `started` of the last warning, so a dead Redis logs once per 10 s.
    last_warning: AtomicU64,
}

impl RedisShared {
    async fn decide(&self, policy: &Policy, key: &LimitKey) -> Result<Decision, String> {
        let redis_key = format!("{}:{}:{}:{key}", self.prefix, policy.name, policy.plan);
        let emission_us = u64::try_from(policy.emission.as_micros()).unwrap_or(u64::MAX).max(1);
        let mut connection = self.connection.clone();
        let call = async {
            self.script
                .key(redis_key)
                .arg(emission_us)
                .arg(policy.burst)
                .invoke_async::<(i64, i64, i64)>(&mut connection)
                .await
        };
        let (allowed, remaining, wait_us) = tokio::time::timeout(REDIS_DEADLINE, call)
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        Ok(policy.decision(
            allowed == 1,
            u32::try_from(remaining).unwrap_or(0),
            Duration::from_micros(u64::try_from(wait_us).unwrap_or(0)),
        ))
    }

    fn degraded(&self, error: &str) {
        metrics::counter!("stormcom_rate_limit_backend_errors_total", "backend" => "redis").increment(1);
        let now = self.started.elapsed().as_secs();
        let last = self.last_warning.load(Ordering::Relaxed);
        if (last == 0 || now >= last + 10)
            && self
                .last_warning
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(%error, "Redis rate limiting failed: using this process's in-memory limits until it is back");
        }
    }
}

struct Inner {
    /// Indexed by class × plan.
    policies: Vec<Option<Policy>>,
    redis: Option<RedisShared>,
}

/// The limiter shared by every request; cheap to clone.
#[derive(Clone)]
pub struct RateLimiter(Arc<Inner>);

impl fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("backend", &self.backend_name())
            .finish_non_exhaustive()
    }
}

const fn slot(class: RouteClass, plan: Plan) -> usize {
    class.index() * Plan::ALL.len() + plan.index()
}

/// How often idle in-memory keys are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

impl RateLimiter {
    /// Limits kept in this process's memory.
    #[must_use]
    pub fn in_memory(config: &RateLimitConfig, plans: &PlanTable) -> Self {
        Self::build(config, plans, None)
    }

    /// Limits shared through Redis by every server process using the same `prefix`.
    /// Fails when Redis cannot be reached now (a misconfiguration should stop start-up).
    pub async fn with_redis(
        config: &RateLimitConfig,
        plans: &PlanTable,
        url: &str,
        prefix: &str,
    ) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("invalid Redis URL: {e}"))?;
        let manager_config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(250)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let mut connection = redis::aio::ConnectionManager::new_with_config(client, manager_config)
            .await
            .map_err(|e| format!("cannot reach Redis: {e}"))?;
        let script = redis::Script::new(GCRA_LUA);
        script
            .prepare_invoke()
            .load_async(&mut connection)
            .await
            .map_err(|e| format!("cannot load the rate-limit script into Redis: {e}"))?;
        let redis = RedisShared {
            connection,
            script,
            prefix: prefix.to_owned(),
            started: Instant::now(),
            last_warning: AtomicU64::new(0),
        };
        Ok(Self::build(config, plans, Some(redis)))
    }

    fn build(config: &RateLimitConfig, plans: &PlanTable, redis: Option<RedisShared>) -> Self {
        let mut policies = Vec::with_capacity(RouteClass::ALL.len() * Plan::ALL.len());
        for class in RouteClass::ALL {
            for plan in Plan::ALL {
                let policy = config
                    .get(class)
                    .filter(|_| class != RouteClass::System)
                    .and_then(|rate| Policy::new(class, plan, rate, plans.get(plan).rate_multiplier));
                debug_assert_eq!(policies.len(), slot(class, plan));
                policies.push(policy);
            }
        }
        let limiter = Self(Arc::new(Inner { policies, redis }));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(prune(Arc::downgrade(&limiter.0)));
        }
        limiter
    }

    #[must_use]
    pub fn backend_name(&self) -> &'static str {
        if self.0.redis.is_some() { "redis" } else { "memory" }
    }

    /// Spends one request of `key`'s budget for (class, plan); `None` when the class is
    /// not limited.
    pub async fn check(&self, class: RouteClass, plan: Plan, key: &LimitKey) -> Option<Decision> {
        let policy = self.0.policies[slot(class, plan)].as_ref()?;
        Some(match &self.0.redis {
            None => policy.decide_locally(key),
            Some(redis) => match redis.decide(policy, key).await {
                Ok(decision) => decision,
                Err(error) => {
                    redis.degraded(&error);
                    policy.decide_locally(key)
                }
            },
        })
    }

    /// The in-memory decision only, whatever the backend (for benchmarks).
    #[must_use]
    pub fn check_in_memory(&self, class: RouteClass, plan: Plan, key: &LimitKey) -> Option<Decision> {
        self.0.policies[slot(class, plan)]
            .as_ref()
            .map(|p| p.decide_locally(key))
    }
}

/// Whose budget a request spends, for the access middleware. Public routes, and
/// requests whose authentication failed, spend the client address's budget; the others
/// their principal's, at the plan of the store in the path (loaded by `authorize` with
/// the grants, so no extra query) or the default plan elsewhere.
pub(crate) fn payer(access: Access, request: &Request) -> (LimitKey, Plan) {
    let principal = (access != Access::Public)
        .then(|| request.extensions().get::<Principal>())
        .flatten()
        .and_then(LimitKey::of_principal);
    let key = principal.unwrap_or_else(|| LimitKey::of_ip(client_ip(request)));
    let plan = request
        .extensions()
        .get::<StoreContext>()
        .map_or_else(Plan::default, StoreContext::plan);
    (key, plan)
}

/// The 429 answer: problem+json `rate_limited` with `Retry-After` and the headers.
pub(crate) fn too_many(class: RouteClass, refused: &Decision) -> Response {
    metrics::counter!("stormcom_rate_limited_total", "class" => class.as_str()).increment(1);
    let seconds = refused.wait_secs();
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        "Too many requests",
        format!("the {} request rate is used up; retry in {seconds} s", class.as_str()),
    )
    .with_retry_after(u32::try_from(seconds).unwrap_or(u32::MAX))
    .into_response();
    refused.apply_headers(response.headers_mut());
    response
}

/// Drops in-memory keys whose buckets are full again (they carry no state), until the
/// limiter itself is dropped.
async fn prune(limiter: Weak<Inner>) {
    let mut ticker = tokio::time::interval(PRUNE_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let Some(inner) = limiter.upgrade() else { return };
        for policy in inner.policies.iter().flatten() {
            policy.local.retain_recent();
            policy.local.shrink_to_fit();
        }
    }
}

impl FromStr for RateLimitConfig {
    type Err = String;

    /// The defaults with `spec` applied (see [`RateLimitConfig::apply`]).
    fn from_str(spec: &str) -> Result<Self, String> {
        let mut config = Self::default();
        config.apply(spec)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_set_or_clear_single_classes() {
        let config: RateLimitConfig = "auth=5/2, storefront_read=off".parse().unwrap();
        assert_eq!(
            config.get(RouteClass::Auth),
            Some(ClassRate {
                per_minute: 5,
                burst: 2
            })
        );
        assert_eq!(config.get(RouteClass::StorefrontRead), None);
        assert_eq!(
            config.get(RouteClass::Checkout),
            RateLimitConfig::default().get(RouteClass::Checkout)
        );
        let all_off: RateLimitConfig = "off".parse().unwrap();
        assert!(RouteClass::ALL.iter().all(|c| all_off.get(*c).is_none()));
        for bad in ["system=1/1", "auth=0/1", "auth", "auth=x/1", "nope=1"] {
            assert!(bad.parse::<RateLimitConfig>().is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_burst_passes_then_the_next_request_waits_one_emission() {
        let config: RateLimitConfig = "admin_write=6/3".parse().unwrap();
        let limiter = RateLimiter::in_memory(&config, &PlanTable::default());
        let key = LimitKey::Unknown;
        let mut remaining = Vec::new();
        for _ in 0..3 {
            let d = limiter.check(RouteClass::AdminWrite, Plan::Free, &key).await.unwrap();
            assert!(d.allowed);
            remaining.push(d.remaining);
        }
        assert_eq!(remaining, [2, 1, 0]);
        let refused = limiter.check(RouteClass::AdminWrite, Plan::Free, &key).await.unwrap();
        assert!(!refused.allowed);
        // 6 a minute: one request every 10 s.
        assert!((9..=10).contains(&refused.wait_secs()), "{:?}", refused.wait);
        let mut headers = HeaderMap::new();
        refused.apply_headers(&mut headers);
        assert_eq!(headers["ratelimit-policy"], "\"admin_write\";q=3;w=30");
        assert_eq!(
            headers["ratelimit"],
            format!("\"admin_write\";r=0;t={}", refused.wait_secs())
        );
        assert!(limiter.check(RouteClass::System, Plan::Free, &key).await.is_none());
    }

    #[tokio::test]
    async fn a_plan_multiplier_scales_the_burst() {
        let config: RateLimitConfig = "admin_read=10/4".parse().unwrap();
        let limiter = RateLimiter::in_memory(&config, &PlanTable::default());
        let pro = limiter
            .check(RouteClass::AdminRead, Plan::Pro, &LimitKey::Unknown)
            .await
            .unwrap();
        let multiplier = PlanTable::default().get(Plan::Pro).rate_multiplier;
        assert_eq!(f64::from(pro.remaining + 1), (4.0 * multiplier).ceil());
    }
}
