//! Where clnrm's networks get their addresses. Docker 20.10 gives a network created
//! without a subnet a whole /16 of its default pools (172.17–31.0.0/16, then
//! 192.168.0.0/16 in /20s): about 31 networks for everything on the engine, which a
//! run of many multi-service tests and its spare networks used up (the user's own
//! `docker network create` then failed). clnrm instead gives each of its networks a
//! /24 of one range, by default 172.31.0.0/16, the last of Docker's own pools: however
//! many networks clnrm holds, they take at most that one pool from everyone else.
//! `CLNRM_NETWORK_RANGE` names another range, or `auto` for the engine's own choice.
//!
//! Pure: the range, the free /24s given the subnets already in use, and the engine's
//! words for "taken" and "no address space left". The requests are in `docker`.

/// The range clnrm's networks are carved from unless `CLNRM_NETWORK_RANGE` says otherwise.
pub(crate) const DEFAULT_RANGE: &str = "172.31.0.0/16";

/// The environment variable naming the range (`a.b.c.d/n`, n from 8 to 24) or `auto`.
pub(crate) const RANGE_VAR: &str = "CLNRM_NETWORK_RANGE";

/// The size of each network clnrm creates: 254 addresses, far more than a test's services.
const NETWORK_BITS: u8 = 24;

/// An IPv4 subnet: its first address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Subnet {
    pub(crate) base: u32,
    pub(crate) bits: u8,
}

impl Subnet {
    /// `a.b.c.d/n` (host bits cleared); `None` for anything else, IPv6 included.
    pub(crate) fn parse(text: &str) -> Option<Subnet> {
        let (address, bits) = text.trim().split_once('/')?;
        let address: std::net::Ipv4Addr = address.parse().ok()?;
        let bits: u8 = bits.parse().ok()?;
        (bits <= 32).then(|| Subnet {
            base: u32::from(address) & mask(bits),
            bits,
        })
    }

    /// Its first host address, which the engine makes the gateway unless told otherwise.
    pub(crate) fn first_host(self) -> Option<std::net::IpAddr> {
        (self.bits <= 30).then(|| std::net::IpAddr::V4((self.base + 1).into()))
    }

    fn last(self) -> u32 {
        self.base | !mask(self.bits)
    }

    pub(crate) fn overlaps(self, other: Subnet) -> bool {
        self.base <= other.last() && other.base <= self.last()
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", std::net::Ipv4Addr::from(self.base), self.bits)
    }
}

fn mask(bits: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0)
}

/// The range to carve networks from, as `value` (of [`RANGE_VAR`]) says: `None` for
/// `auto` (the engine picks, one of its pools per network), the default when unset.
pub(crate) fn range_from(value: Option<&str>) -> Result<Option<Subnet>, String> {
    let value = value.map(str::trim).filter(|v| !v.is_empty());
    match value {
        Some(v) if v.eq_ignore_ascii_case("auto") => Ok(None),
        Some(v) => match Subnet::parse(v) {
            Some(range) if (8..=NETWORK_BITS).contains(&range.bits) => Ok(Some(range)),
            _ => Err(format!(
                "{RANGE_VAR}={v} is not an IPv4 range from /8 to /24 like {DEFAULT_RANGE}, \
                 nor `auto`"
            )),
        },
        None => Ok(Subnet::parse(DEFAULT_RANGE)),
    }
}

/// The /24s of `range` that overlap none of `taken`, starting at the `start`-th
/// (wrapping), so processes and tests creating networks at once try different ones first.
pub(crate) fn free_subnets(range: Subnet, taken: &[Subnet], start: usize) -> Vec<Subnet> {
    let count = 1u32 << (NETWORK_BITS - range.bits);
    let first = start as u32 % count;
    (0..count)
        .map(|i| Subnet {
            base: range.base + (((first + i) % count) << (32 - NETWORK_BITS)),
            bits: NETWORK_BITS,
        })
        .filter(|subnet| !taken.iter().any(|t| t.overlaps(*subnet)))
        .collect()
}

/// The subnets routed on this machine (`/proc/net/route`, Linux), but the default
/// route: Docker does not check a subnet it is given against the host's routes, so
/// clnrm does, lest a test network hide a LAN or a VPN behind it.
pub(crate) fn host_routes(route_table: &str) -> Vec<Subnet> {
    route_table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // Little-endian hex, as the kernel prints them.
            let destination = u32::from_str_radix(fields.get(1)?, 16).ok()?.swap_bytes();
            let mask = u32::from_str_radix(fields.get(7)?, 16).ok()?.swap_bytes();
            (mask != 0).then(|| Subnet {
                base: destination & mask,
                bits: mask.leading_ones() as u8,
            })
        })
        .collect()
}

/// Whether the engine refused a subnet it was given because something else holds it
/// (Docker: `Pool overlaps with other one on this address space`; Podman: `subnet … is
/// already used on the host or by another config`).
pub(crate) fn is_subnet_taken(message: &str) -> bool {
    message.contains("overlaps with") || message.contains("is already used on the host")
}

/// Whether the engine had no address space left for a network of its choosing
/// (Docker: `could not find an available, non-overlapping IPv4 address pool among the
/// defaults…`; Podman: `could not find free subnet from subnet pools`).
pub(crate) fn is_out_of_address_space(message: &str) -> bool {
    message.contains("could not find an available, non-overlapping")
        || message.contains("could not find free subnet")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(text: &str) -> Subnet {
        Subnet::parse(text).unwrap()
    }

    #[test]
    fn the_default_range_is_docker_s_last_pool_and_auto_leaves_it_to_the_engine() {
        assert_eq!(range_from(None), Ok(Some(subnet("172.31.0.0/16"))));
        assert_eq!(range_from(Some(" ")), Ok(Some(subnet("172.31.0.0/16"))));
        assert_eq!(range_from(Some("auto")), Ok(None));
        assert_eq!(
            range_from(Some("10.77.0.0/20")),
            Ok(Some(subnet("10.77.0.0/20")))
        );
        let bad = range_from(Some("10.77.0.0/28")).unwrap_err();
        assert!(bad.contains("CLNRM_NETWORK_RANGE=10.77.0.0/28"), "{bad}");
        assert!(range_from(Some("fd00::/64")).is_err());
    }

    #[test]
    fn free_subnets_skip_whatever_overlaps_and_start_where_asked() {
        let range = subnet("10.1.0.0/22");
        let all = free_subnets(range, &[], 0);
        let names: Vec<String> = all.iter().map(Subnet::to_string).collect();
        assert_eq!(
            names,
            ["10.1.0.0/24", "10.1.1.0/24", "10.1.2.0/24", "10.1.3.0/24"]
        );
        let taken = [subnet("10.1.1.0/24"), subnet("10.1.2.128/25")];
        let free: Vec<String> = free_subnets(range, &taken, 3)
            .iter()
            .map(Subnet::to_string)
            .collect();
        assert_eq!(free, ["10.1.3.0/24", "10.1.0.0/24"]);
        // A network of the engine's own choosing over the whole range leaves nothing.
        assert!(free_subnets(range, &[subnet("10.0.0.0/8")], 0).is_empty());
        assert_eq!(
            subnet("172.31.7.0/24").first_host(),
            Some("172.31.7.1".parse().unwrap())
        );
    }

    #[test]
    fn host_routes_are_read_from_the_kernel_table_without_the_default_route() {
        let table =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
            eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(
            host_routes(table),
            [subnet("172.17.0.0/16"), subnet("192.0.2.0/24")]
        );
    }

    #[test]
    fn the_engines_words_for_taken_and_exhausted_are_recognised() {
        assert!(is_subnet_taken(
            "Pool overlaps with other one on this address space"
        ));
        assert!(is_subnet_taken(
            "subnet 10.89.0.0/24 is already used on the host or by another config"
        ));
        assert!(!is_subnet_taken("network with name x already exists"));
        assert!(is_out_of_address_space(
            "could not find an available, non-overlapping IPv4 address pool among the \
             defaults to assign to the network"
        ));
        assert!(is_out_of_address_space(
            "could not find free subnet from subnet pools"
        ));
    }
}
