namespace Chainwalk.Host;

/// <summary>
/// The net.* sysctls that change netfilter's or routing's behaviour, with the values a fresh network
/// namespace has on Linux 6.x. Per-interface keys (net.ipv4.conf.IFACE.*) are created with an interface
/// from the "default" values.
/// </summary>
public static class Sysctl
{
    public static IReadOnlyDictionary<string, string> Defaults { get; } = new SortedDictionary<string, string>(StringComparer.Ordinal)
    {
        ["net.ipv4.ip_forward"] = "0",
        ["net.ipv4.conf.all.forwarding"] = "0",
        ["net.ipv4.conf.default.forwarding"] = "0",
        ["net.ipv4.conf.lo.forwarding"] = "0",
        ["net.ipv4.conf.all.rp_filter"] = "0",
        ["net.ipv4.conf.default.rp_filter"] = "0",
        ["net.ipv4.conf.lo.rp_filter"] = "0",
        ["net.ipv4.conf.all.route_localnet"] = "0",
        ["net.ipv4.conf.default.route_localnet"] = "0",
        ["net.ipv4.conf.lo.route_localnet"] = "0",
        ["net.ipv4.conf.all.accept_local"] = "0",
        ["net.ipv4.conf.default.accept_local"] = "0",
        ["net.ipv4.conf.lo.accept_local"] = "0",
        ["net.ipv4.conf.all.send_redirects"] = "1",
        ["net.ipv4.conf.default.send_redirects"] = "1",
        ["net.ipv4.conf.lo.send_redirects"] = "1",
        ["net.ipv4.ip_default_ttl"] = "64",
        ["net.ipv4.ip_local_port_range"] = "32768\t60999",
        ["net.ipv4.icmp_echo_ignore_all"] = "0",
        ["net.ipv4.icmp_ratelimit"] = "1000",
        ["net.ipv4.icmp_ratemask"] = "6168",
        ["net.ipv6.icmp.ratelimit"] = "1000",
        ["net.ipv6.conf.all.forwarding"] = "0",
        ["net.ipv6.conf.default.forwarding"] = "0",
        ["net.ipv6.conf.lo.forwarding"] = "0",
        ["net.ipv6.conf.all.disable_ipv6"] = "0",
        ["net.ipv6.conf.default.disable_ipv6"] = "0",
        ["net.ipv6.conf.lo.disable_ipv6"] = "0",
        ["net.ipv6.conf.all.hop_limit"] = "64",
        ["net.ipv6.conf.default.hop_limit"] = "64",
        ["net.ipv6.conf.lo.hop_limit"] = "64",
        ["net.netfilter.nf_conntrack_max"] = "262144",
        ["net.netfilter.nf_conntrack_buckets"] = "262144",
        ["net.netfilter.nf_conntrack_tcp_loose"] = "1",
        ["net.netfilter.nf_conntrack_tcp_be_liberal"] = "0",
        ["net.netfilter.nf_conntrack_tcp_max_retrans"] = "3",
        ["net.netfilter.nf_conntrack_tcp_ignore_invalid_rst"] = "0",
        ["net.netfilter.nf_conntrack_tcp_timeout_syn_sent"] = "120",
        ["net.netfilter.nf_conntrack_tcp_timeout_syn_recv"] = "60",
        ["net.netfilter.nf_conntrack_tcp_timeout_established"] = "432000",
        ["net.netfilter.nf_conntrack_tcp_timeout_fin_wait"] = "120",
        ["net.netfilter.nf_conntrack_tcp_timeout_close_wait"] = "60",
        ["net.netfilter.nf_conntrack_tcp_timeout_last_ack"] = "30",
        ["net.netfilter.nf_conntrack_tcp_timeout_time_wait"] = "120",
        ["net.netfilter.nf_conntrack_tcp_timeout_close"] = "10",
        ["net.netfilter.nf_conntrack_tcp_timeout_max_retrans"] = "300",
        ["net.netfilter.nf_conntrack_tcp_timeout_unacknowledged"] = "300",
        ["net.netfilter.nf_conntrack_udp_timeout"] = "30",
        ["net.netfilter.nf_conntrack_udp_timeout_stream"] = "120",
        ["net.netfilter.nf_conntrack_icmp_timeout"] = "30",
        ["net.netfilter.nf_conntrack_icmpv6_timeout"] = "30",
        ["net.netfilter.nf_conntrack_generic_timeout"] = "600",
        ["net.netfilter.nf_conntrack_gre_timeout"] = "30",
        ["net.netfilter.nf_conntrack_gre_timeout_stream"] = "180",
        ["net.netfilter.nf_conntrack_checksum"] = "1",
        ["net.netfilter.nf_conntrack_log_invalid"] = "0",
        ["net.netfilter.nf_conntrack_acct"] = "0",
        ["net.netfilter.nf_conntrack_timestamp"] = "0",
        ["net.netfilter.nf_conntrack_events"] = "2",
        ["net.netfilter.nf_log_all_netns"] = "0",
        ["net.bridge.bridge-nf-call-iptables"] = "1",
        ["net.bridge.bridge-nf-call-ip6tables"] = "1",
    };

    /// <summary>Per-interface keys an interface gets, copied from net.ipv4.conf.default.* / net.ipv6.conf.default.*.</summary>
    public static IEnumerable<string> PerInterfaceSuffixes(string prefix) =>
        Defaults.Keys.Where(k => k.StartsWith(prefix + "default.", StringComparison.Ordinal)).Select(k => k[(prefix.Length + "default.".Length)..]);
}
