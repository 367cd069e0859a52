using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// The pipeline's skeleton: hooks and tables in the kernel's order, routing between them, the chain walker
/// (jump, goto, RETURN, policies, implicit returns) and counters, using only the rule's IP part.
/// </summary>
public class PipelineTests
{
    private const string Walk = """
        *filter
        :INPUT DROP [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        :A - [0:0]
        :B - [0:0]
        :C - [0:0]
        -A INPUT -s 10.0.0.5/32 -j A
        -A INPUT -s 10.0.0.6/32 -g B
        -A INPUT -s 10.0.0.7/32 -j B
        -A INPUT -s 10.0.0.7/32 -j ACCEPT
        -A A -p tcp -j RETURN
        -A A -j ACCEPT
        -A B -g C
        -A C -p udp -j ACCEPT
        COMMIT
        """;

    public static TheoryData<string, string, string> WalkCases => new()
    {
        // source, protocol, expected fate
        { "10.0.0.5", "udp", "delivered-local" },   // INPUT → A (no RETURN for udp) → ACCEPT
        { "10.0.0.5", "tcp", "dropped" },           // A RETURNs, nothing else matches → policy DROP
        { "10.0.0.6", "tcp", "dropped" },           // goto B → goto C → end of C: no return address → policy
        { "10.0.0.6", "udp", "delivered-local" },   // goto B → goto C → ACCEPT
        { "10.0.0.7", "tcp", "delivered-local" },   // jump B → goto C → end of C returns after INPUT rule 3 → rule 4 ACCEPT
        { "10.0.0.9", "tcp", "dropped" },           // nothing matches → policy
    };

    [Theory]
    [MemberData(nameof(WalkCases))]
    public void Jump_goto_and_return_follow_the_kernel(string source, string protocol, string fate)
    {
        var host = EngineHost.Create(Walk);
        byte[] bytes = protocol == "tcp" ? EngineHost.Tcp(source, "10.0.0.1", 1000, 22) : EngineHost.Udp(source, "10.0.0.1", 1000, 53);
        PacketResult r = new Netfilter(host).Process(EngineHost.In("eth0", bytes));
        r.Error.ShouldBeNull();
        r.Fate.ShouldBe([fate]);
    }

    [Fact]
    public void Counters_count_packets_and_ip_total_length_on_matching_rules_and_policies()
    {
        var host = EngineHost.Create(Walk);
        var nf = new Netfilter(host);
        nf.Process(EngineHost.In("eth0", EngineHost.Tcp("10.0.0.5", "10.0.0.1", 1000, 22)));           // 40 bytes
        nf.Process(EngineHost.In("eth0", EngineHost.Udp("10.0.0.7", "10.0.0.1", 1000, 53)));           // 28 bytes
        nf.Process(EngineHost.In("eth0", EngineHost.Udp("10.0.0.9", "10.0.0.1", 1000, 53)));           // 28 bytes
        EngineHost.Counters(host).ShouldBe("""
            *filter
            :INPUT DROP [2:68]
            :FORWARD DROP [0:0]
            :OUTPUT ACCEPT [0:0]
            :A - [0:0]
            :B - [0:0]
            :C - [0:0]
            [1:40] -A INPUT -s 10.0.0.5/32 -j A
            [0:0] -A INPUT -s 10.0.0.6/32 -g B
            [1:28] -A INPUT -s 10.0.0.7/32 -j B
            [0:0] -A INPUT -s 10.0.0.7/32 -j ACCEPT
            [1:40] -A A -p tcp -j RETURN
            [0:0] -A A -j ACCEPT
            [1:28] -A B -g C
            [1:28] -A C -p udp -j ACCEPT
            COMMIT

            """.Replace("\r", ""));
    }

    [Fact]
    public void Tables_run_in_priority_order_at_each_hook()
    {
        const string rules = """
            *mangle
            :PREROUTING ACCEPT [0:0]
            :INPUT ACCEPT [0:0]
            :FORWARD ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            :POSTROUTING ACCEPT [0:0]
            COMMIT
            *raw
            :PREROUTING ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            COMMIT
            *filter
            :INPUT ACCEPT [0:0]
            :FORWARD ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            COMMIT
            *security
            :INPUT ACCEPT [0:0]
            :FORWARD ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            COMMIT
            """;
        var host = EngineHost.Create(rules);
        var nf = new Netfilter(host) { RecordTrace = true };
        PacketResult r = nf.Process(EngineHost.In("eth0", EngineHost.Tcp("10.0.0.5", "10.0.0.1", 1000, 22)));
        string.Join(" ", r.Trace!.OfType<TableEvent>().Select(t => $"{t.Hook.ToString()}:{t.Table}"))
            .ShouldBe("Prerouting:raw Prerouting:mangle Input:mangle Input:filter Input:security");
        r = nf.Process(EngineHost.In("eth0", EngineHost.Tcp("10.0.0.5", "192.168.1.9", 1000, 22)));
        string.Join(" ", r.Trace!.OfType<TableEvent>().Select(t => $"{t.Hook.ToString()}:{t.Table}"))
            .ShouldBe("Prerouting:raw Prerouting:mangle Forward:mangle Forward:filter Forward:security Postrouting:mangle");
        r = nf.Process(EngineHost.Local(EngineHost.Tcp("10.0.0.1", "10.0.0.9", 1000, 22)));
        string.Join(" ", r.Trace!.OfType<TableEvent>().Select(t => $"{t.Hook.ToString()}:{t.Table}"))
            .ShouldBe("Output:raw Output:mangle Output:filter Output:security Postrouting:mangle");
        r.Fate.ShouldBe(["sent:eth0"]);
    }

    [Fact]
    public void Forwarding_decrements_the_ttl_before_FORWARD_and_sends_the_packet_out()
    {
        var host = EngineHost.Create();
        PacketResult r = new Netfilter(host).Process(EngineHost.In("eth0", EngineHost.Tcp("10.0.0.5", "192.168.1.9", 1000, 22, ttl: 9)));
        r.Fate.ShouldBe(["forwarded:eth1"]);
        r.Outputs.Count.ShouldBe(1);
        Packet p = r.Outputs[0].Packet;
        p.Ttl.ShouldBe((byte)8);
        p.IpChecksumValid.ShouldBeTrue();
    }

    [Theory]
    [InlineData(0xFEFF, 0x0000)]   // the sum reaches exactly 0xFFFF: ip_decrease_ttl adds one more (a fold would keep 0xFFFF)
    [InlineData(0xFEFE, 0xFFFE)]
    [InlineData(0xFF10, 0x0011)]   // a carry out of the word comes back in at the bottom
    public void Forwarding_adjusts_the_ip_checksum_as_ip_decrease_ttl_does(int before, int after)
    {
        byte[] b = EngineHost.Tcp("10.0.0.5", "192.168.1.9", 1000, 22, ttl: 9);
        // Choose the identification so that the header checksum is `before` (the kernel recorded 0x0000 where a
        // one's-complement fold gives 0xFFFF: conformance long run, seed 91, cases 0261 and 2850).
        for (int id = 0; id <= 0xFFFF; id++)
        {
            b[4] = (byte)(id >> 8); b[5] = (byte)id; b[10] = 0; b[11] = 0;
            uint sum = 0;
            for (int i = 0; i < 20; i += 2) sum += (uint)((b[i] << 8) | b[i + 1]);
            while (sum > 0xFFFF) sum = (sum & 0xFFFF) + (sum >> 16);
            ushort check = (ushort)~sum;
            if (check != before) continue;
            b[10] = (byte)(check >> 8); b[11] = (byte)check;
            break;
        }
        ((b[10] << 8) | b[11]).ShouldBe(before);
        PacketResult r = new Netfilter(EngineHost.Create()).Process(EngineHost.In("eth0", b));
        r.Fate.ShouldBe(["forwarded:eth1"]);
        byte[] o = r.Outputs[0].Packet.Bytes;
        o[8].ShouldBe((byte)8);
        ((o[10] << 8) | o[11]).ShouldBe(after);
    }

    [Fact]
    public void Ttl_expiry_drops_and_answers_with_icmp_time_exceeded_through_OUTPUT()
    {
        var host = EngineHost.Create("""
            *filter
            :INPUT ACCEPT [0:0]
            :FORWARD ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            COMMIT
            """);
        byte[] sent = EngineHost.Udp("10.0.0.5", "192.168.1.9", 1000, 33434, ttl: 1);
        PacketResult r = new Netfilter(host).Process(EngineHost.In("eth0", sent));
        r.Fate.ShouldBe(["dropped"]);
        r.Outputs.Count.ShouldBe(1);
        r.Outputs[0].Interface.ShouldBe("eth0");
        Packet icmp = r.Outputs[0].Packet;
        (icmp.IcmpType, icmp.IcmpCode).ShouldBe(((byte)11, (byte)0));
        IpNet.FormatAddress(icmp.Source, IpFamily.V4).ShouldBe("10.0.0.1");
        IpNet.FormatAddress(icmp.Destination, IpFamily.V4).ShouldBe("10.0.0.5");
        icmp.Tos.ShouldBe((byte)0xc0);
        icmp.TransportChecksumValid.ShouldBeTrue();
        icmp.TotalLength.ShouldBe(20 + 8 + sent.Length);
        EngineHost.Counters(host).ShouldContain(":OUTPUT ACCEPT [1:56]");
    }

    [Fact]
    public void Without_ip_forward_a_packet_for_another_host_is_dropped_silently()
    {
        var host = EngineHost.Create();
        host.Sysctls["net.ipv4.ip_forward"] = "0";
        foreach (string k in host.Sysctls.Keys.Where(k => k.StartsWith("net.ipv4.conf.", StringComparison.Ordinal) && k.EndsWith(".forwarding", StringComparison.Ordinal)).ToList())
            host.Sysctls[k] = "0";
        PacketResult r = new Netfilter(host).Process(EngineHost.In("eth0", EngineHost.Tcp("10.0.0.5", "192.168.1.9", 1000, 22)));
        r.Fate.ShouldBe(["dropped"]);
        r.Outputs.ShouldBeEmpty();
    }

    [Fact]
    public void A_local_packet_to_an_own_address_loops_back_through_PREROUTING_and_INPUT()
    {
        var host = EngineHost.Create("""
            *filter
            :INPUT ACCEPT [0:0]
            :FORWARD ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            -A INPUT -i lo -j ACCEPT
            -A OUTPUT -o lo -j ACCEPT
            COMMIT
            """);
        PacketResult r = new Netfilter(host).Process(EngineHost.Local(EngineHost.Tcp("10.0.0.1", "192.168.1.1", 1000, 22)));
        r.Fate.ShouldBe(["delivered-local"]);
        r.Outputs.ShouldBeEmpty();
        string counters = EngineHost.Counters(host);
        counters.ShouldContain("[1:40] -A INPUT -i lo -j ACCEPT");
        counters.ShouldContain("[1:40] -A OUTPUT -o lo -j ACCEPT");
    }

    [Fact]
    public void A_frame_for_another_mac_never_reaches_netfilter()
    {
        var host = EngineHost.Create(Walk);
        PacketResult r = new Netfilter(host).Process(new PacketInput
        {
            Bytes = EngineHost.Udp("10.0.0.5", "10.0.0.1", 1, 2),
            InInterface = "eth0",
            SourceMac = 0x02_00_00_00_00_99,
            DestinationMac = 0x02_00_00_00_00_55,
        });
        r.Fate.ShouldBe(["dropped"]);
        EngineHost.Counters(host).ShouldContain(":INPUT DROP [0:0]");
    }

    [Fact]
    public void A_bad_ipv4_header_checksum_is_dropped_before_PREROUTING()
    {
        var host = EngineHost.Create(Walk);
        byte[] b = EngineHost.Udp("10.0.0.5", "10.0.0.1", 1, 2);
        b[10] ^= 0xff;
        PacketResult r = new Netfilter(host).Process(EngineHost.In("eth0", b));
        r.Fate.ShouldBe(["dropped"]);
        r.DropReason!.ShouldContain("checksum");
    }

    [Fact]
    public void No_route_answers_with_net_unreachable()
    {
        var host = EngineHost.Create(commands:
        [
            "ip link add eth0 type dummy",
            "ip link set eth0 up",
            "ip addr add 10.0.0.1/24 dev eth0",
            "sysctl -w net.ipv4.ip_forward=1",
        ]);
        PacketResult r = new Netfilter(host).Process(EngineHost.In("eth0", EngineHost.Tcp("10.0.0.5", "8.8.8.8", 1000, 53)));
        r.Fate.ShouldBe(["dropped"]);
        r.Outputs.Count.ShouldBe(1);
        Packet icmp = r.Outputs[0].Packet;
        (icmp.IcmpType, icmp.IcmpCode).ShouldBe(((byte)3, (byte)0));
    }

    public static TheoryData<string, string[]> TraceCases => new()
    {
        // A user chain's end is "return"; an unconditional ACCEPT/DROP/RETURN rule is traced as "policy" in a
        // built-in chain and "return" in a user chain (ipt_do_table's get_chainname_rulenum).
        { "10.0.0.5", ["TRACE: filter:INPUT:rule:1 ", "TRACE: filter:A:return:2 "] },
        { "10.0.0.9", ["TRACE: filter:INPUT:policy:5 "] },
    };

    [Theory]
    [MemberData(nameof(TraceCases))]
    public void Trace_lines_name_table_chain_kind_and_number_like_the_kernel(string source, string[] prefixes)
    {
        var host = EngineHost.Create(Walk);
        PacketResult r = new Netfilter(host).Process(new PacketInput
        {
            Bytes = EngineHost.Udp(source, "10.0.0.1", 1000, 53),
            InInterface = "eth0",
            Trace = true,
        });
        r.Logs.Count.ShouldBe(prefixes.Length);
        for (int i = 0; i < prefixes.Length; i++)
        {
            r.Logs[i].ShouldStartWith(prefixes[i] + "IN=eth0 OUT= ");
        }
    }

    [Fact]
    public void A_datagram_larger_than_the_mtu_leaves_as_fragments()
    {
        var host = EngineHost.Create();
        byte[] big = PacketBuilder.Ipv4("10.0.0.5", "192.168.1.9").Id(77).DontFragment(false).Udp(1000, 2000).PayloadLength(2972).Build();
        PacketResult r = new Netfilter(host).Process(EngineHost.In("eth0", big));
        r.Fate.ShouldBe(["forwarded:eth1"]);
        r.Outputs.Select(o => o.Bytes.Length).ShouldBe([1500, 1500, 40]);
        r.Outputs.Select(o => (o.Packet.FragmentOffset, o.Packet.MoreFragments, o.Packet.FragmentId, o.Packet.IpChecksumValid))
            .ShouldBe([(0, true, 77u, true), (1480, true, 77u, true), (2960, false, 77u, true)]);
    }

    [Fact]
    public void A_df_datagram_larger_than_the_mtu_is_answered_with_fragmentation_needed()
    {
        var host = EngineHost.Create();
        byte[] big = PacketBuilder.Ipv4("10.0.0.5", "192.168.1.9").DontFragment().Udp(1000, 2000).PayloadLength(1600).Build();
        PacketResult r = new Netfilter(host).Process(EngineHost.In("eth0", big));
        r.Fate.ShouldBe(["dropped"]);
        Packet icmp = r.Outputs.Single().Packet;
        (icmp.IcmpType, icmp.IcmpCode).ShouldBe(((byte)3, (byte)4));
        (icmp.Bytes[20 + 6] << 8 | icmp.Bytes[20 + 7]).ShouldBe(1500);
    }

    [Fact]
    public void Ipv4_fragments_for_the_host_are_reassembled_before_INPUT()
    {
        var host = EngineHost.Create("""
            *filter
            :INPUT ACCEPT [0:0]
            :FORWARD ACCEPT [0:0]
            :OUTPUT ACCEPT [0:0]
            -A INPUT -p udp
            COMMIT
            """);
        byte[] whole = PacketBuilder.Ipv4("10.0.0.5", "10.0.0.1").Id(9).DontFragment(false).Udp(1000, 2000).PayloadLength(2972).Build();
        List<byte[]> parts = Fragmentation.FragmentV4(whole, 1500);
        var nf = new Netfilter(host);
        nf.Process(EngineHost.In("eth0", parts[2])).Fate.ShouldBe(["held:reassembly"]);
        nf.Process(EngineHost.In("eth0", parts[0])).Fate.ShouldBe(["held:reassembly"]);
        EngineHost.Counters(host).ShouldContain("[0:0] -A INPUT -p udp");
        nf.Process(EngineHost.In("eth0", parts[1])).Fate.ShouldBe(["delivered-local"]);
        EngineHost.Counters(host).ShouldContain("[1:3000] -A INPUT -p udp");
    }

    [Fact]
    public void Forwarded_fragments_pass_one_by_one_without_conntrack()
    {
        var host = EngineHost.Create();
        byte[] whole = PacketBuilder.Ipv4("10.0.0.5", "192.168.1.9").Id(9).DontFragment(false).Udp(1000, 2000).PayloadLength(2972).Build();
        var nf = new Netfilter(host);
        foreach (byte[] part in Fragmentation.FragmentV4(whole, 1500))
            nf.Process(EngineHost.In("eth0", part)).Fate.ShouldBe(["forwarded:eth1"]);
    }

    [Fact]
    public void An_overlapping_fragment_discards_the_datagram()
    {
        var host = EngineHost.Create();
        byte[] whole = PacketBuilder.Ipv4("10.0.0.5", "10.0.0.1").Id(9).DontFragment(false).Udp(1000, 2000).PayloadLength(2972).Build();
        List<byte[]> parts = Fragmentation.FragmentV4(whole, 1500);
        List<byte[]> other = Fragmentation.FragmentV4(whole, 1000);
        var nf = new Netfilter(host);
        nf.Process(EngineHost.In("eth0", parts[0])).Fate.ShouldBe(["held:reassembly"]);
        nf.Process(EngineHost.In("eth0", other[1])).Fate.ShouldBe(["dropped"]);
        nf.Process(EngineHost.In("eth0", parts[1])).Fate.ShouldBe(["held:reassembly"]);
    }

    private static readonly string[] V6Host =
    [
        "ip link add eth0 type dummy", "ip link set eth0 up", "ip -6 addr add 2001:db8:1::1/64 dev eth0 nodad",
        "ip link add eth1 type dummy", "ip link set eth1 up", "ip -6 addr add 2001:db8:2::1/64 dev eth1 nodad",
        "sysctl -w net.ipv6.conf.all.forwarding=1",
    ];

    [Fact]
    public void Ipv6_is_forwarded_with_the_hop_limit_decremented()
    {
        var host = EngineHost.Create("", "*filter\n:FORWARD ACCEPT [0:0]\n-A FORWARD -i eth0 -o eth1\nCOMMIT\n", V6Host);
        PacketResult r = new Netfilter(host).Process(EngineHost.In("eth0", EngineHost.Udp("2001:db8:1::5", "2001:db8:2::9", 1000, 53, ttl: 7)));
        r.Fate.ShouldBe(["forwarded:eth1"]);
        r.Outputs.Single().Packet.Ttl.ShouldBe((byte)6);
        EngineHost.Counters(host, IpFamily.V6).ShouldContain("[1:48] -A FORWARD -i eth0 -o eth1");
    }

    [Fact]
    public void Ipv6_hop_limit_expiry_is_answered_with_icmpv6_time_exceeded()
    {
        var host = EngineHost.Create("", "", V6Host);
        PacketResult r = new Netfilter(host).Process(EngineHost.In("eth0", EngineHost.Udp("2001:db8:1::5", "2001:db8:2::9", 1000, 53, ttl: 1)));
        r.Fate.ShouldBe(["dropped"]);
        Packet icmp = r.Outputs.Single().Packet;
        (icmp.IcmpType, icmp.IcmpCode).ShouldBe(((byte)3, (byte)0));
        IpNet.FormatAddress(icmp.Source, IpFamily.V6).ShouldBe("2001:db8:1::1");
        icmp.TransportChecksumValid.ShouldBeTrue();
    }

    [Fact]
    public void Ipv6_loopback_destination_from_a_wire_is_dropped_before_PREROUTING()
    {
        var host = EngineHost.Create("", "*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING\nCOMMIT\n", V6Host);
        PacketResult r = new Netfilter(host).Process(EngineHost.In("eth0", EngineHost.Udp("2001:db8:1::5", "::1", 1000, 53)));
        r.Fate.ShouldBe(["dropped"]);
        EngineHost.Counters(host, IpFamily.V6).ShouldContain("[0:0] -A PREROUTING");
    }

    [Fact]
    public void Icmpv6_errors_are_rate_limited_per_destination_scaled_by_the_route_prefix()
    {
        // icmpv6_xrlim_allow: 1000 ms >> ((128 - 64) >> 5) = 250 ms per message, a burst of 6. (The kernel answered
        // 7 of 8 packets scapy sent back to back, the eighth after more than 250 ms had passed.)
        var host = EngineHost.Create("", "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p udp -j REJECT\nCOMMIT\n", V6Host);
        var nf = new Netfilter(host);
        int replies = 0;
        for (int i = 0; i < 8; i++)
            replies += nf.Process(EngineHost.In("eth0", EngineHost.Udp("2001:db8:1::5", "2001:db8:1::1", (ushort)(1000 + i), 9), at: 10)).Outputs.Count;
        replies.ShouldBe(6);
        nf.Process(EngineHost.In("eth0", EngineHost.Udp("2001:db8:1::5", "2001:db8:1::1", 2000, 9), at: 10.25)).Outputs.Count.ShouldBe(1);
        nf.Process(EngineHost.In("eth0", EngineHost.Udp("2001:db8:1::5", "2001:db8:1::1", 2001, 9), at: 10.3)).Outputs.Count.ShouldBe(0);
    }
}
