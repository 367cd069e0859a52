using System.Text.RegularExpressions;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Nat;

/// <summary>
/// NAT cases beside the two labs, on the guide's gateway: source port clashes, an ICMP error about a
/// masqueraded connection, the lab's DNAT rule catching a LAN host (hairpin), SNAT to an address range,
/// REDIRECT, NETMAP both ways and IPv6 MASQUERADE. Where the kernel's answer is in kernel-recording-nat.txt
/// (tests/tools/nat/record-nat.sh, Linux 6.18) the expectation is that answer, with timeouts one second
/// higher (the virtual clock stands still); a port the kernel picks at random is checked for its range.
/// </summary>
public partial class NatScenarioTests
{
    private const string S = "93.184.216.34";

    private static byte[] Syn(string src, string dst, ushort sport, ushort dport) =>
        PacketBuilder.Ipv4(src, dst).Tcp(sport, dport, TcpFlags.Syn, 1000, 0).Build();

    private static string Gateway => NatGatewayTests.GatewayRules;

    [GeneratedRegex(@"198\.51\.100\.2:(\d+) > ")]
    private static partial Regex SourcePort();

    private static int MappedPort(PacketResult r)
    {
        Match m = SourcePort().Match(NatRig.Outputs(r));
        m.Success.ShouldBeTrue(NatRig.Outputs(r));
        return int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public void A_second_host_with_the_same_source_port_gets_a_free_port_of_the_same_class()
    {
        var rig = new NatRig(Gateway);
        NatRig.Outputs(rig.In("eth1", Syn("10.0.1.20", S, 40000, 80))).ShouldBe("eth0 198.51.100.2:40000 > 93.184.216.34:80 S");

        // Recorded: the kernel picks a random port in 1024-65535 (another one at each recording).
        PacketResult second = rig.In("eth1", Syn("10.0.1.21", S, 40000, 80));
        int p = MappedPort(second);
        p.ShouldBeInRange(1024, 65535);
        p.ShouldNotBe(40000);
        rig.Listing.Split('\n')[0].ShouldBe($"tcp      6 120 SYN_SENT src=10.0.1.21 dst=93.184.216.34 sport=40000 dport=80 [UNREPLIED] src=93.184.216.34 dst=198.51.100.2 sport=80 dport={p} mark=0 use=1");
        NatRig.Notes(second).ShouldContain(n => n.Contains("clash: port 40000 is taken by another connection", StringComparison.Ordinal));

        // A free privileged port is kept; a taken one moves within 600-1023 (recorded).
        NatRig.Outputs(rig.In("eth1", Syn("10.0.1.21", S, 700, 80))).ShouldBe("eth0 198.51.100.2:700 > 93.184.216.34:80 S");
        int q = MappedPort(rig.In("eth1", Syn("10.0.1.20", S, 700, 80)));
        q.ShouldBeInRange(600, 1023);
        q.ShouldNotBe(700);

        // The remapped connection's replies find their way back.
        PacketResult reply = rig.In("eth0", PacketBuilder.Ipv4(S, "198.51.100.2").Tcp(80, (ushort)p, TcpFlags.Syn | TcpFlags.Ack, 5000, 1001).Build());
        NatRig.Outputs(reply).ShouldBe("eth1 93.184.216.34:80 > 10.0.1.21:40000 SA");
    }

    [Fact]
    public void An_icmp_error_about_a_masqueraded_flow_is_translated_inside_and_out()
    {
        var rig = new NatRig(Gateway);
        byte[] udp = PacketBuilder.Ipv4("10.0.1.20", S).Udp(5000, 53).Payload("x"u8).Build();
        PacketResult r = rig.In("eth1", udp);
        NatRig.Outputs(r).ShouldBe("eth0 198.51.100.2:5000 > 93.184.216.34:53");
        byte[] sent = r.Outputs[0].Bytes;
        byte[] error = PacketBuilder.Ipv4(S, "198.51.100.2").IcmpError(3, 3, PacketBuilder.Quote(sent, IpFamily.V4)).Build();
        PacketResult back = rig.In("eth0", error);
        back.CtState.ShouldBe("RELATED");
        NatRig.Outputs(back).ShouldBe("eth1 93.184.216.34 > 10.0.1.20 icmp 3 quoting 10.0.1.20:5000 > 93.184.216.34:53");
        Packet inner = back.Outputs[0].Packet.QuotedPacket!;
        inner.IpChecksumValid.ShouldBeTrue();
        rig.Listing.ShouldBe("udp      17 30 src=10.0.1.20 dst=93.184.216.34 sport=5000 dport=53 [UNREPLIED] src=93.184.216.34 dst=198.51.100.2 sport=53 dport=5000 mark=0 use=1");
    }

    [Fact]
    public void The_time_exceeded_the_gateway_sends_about_a_port_forwarded_packet_quotes_it_as_the_client_sent_it()
    {
        var rig = new NatRig(Gateway);
        PacketResult r = rig.In("eth0", PacketBuilder.Ipv4("203.0.113.9", "198.51.100.2").Ttl(1).Tcp(51002, 443, TcpFlags.Syn, 1000, 0).Build());
        r.Fate.ShouldBe(["dropped"]);
        // Recorded: attached to the (never confirmed) connection, the error is un-DNATed at POSTROUTING.
        NatRig.Outputs(r).ShouldBe("eth0 198.51.100.2 > 203.0.113.9 icmp 11 quoting 203.0.113.9:51002 > 198.51.100.2:443");
        rig.Listing.ShouldBe("");
    }

    [Fact]
    public void The_labs_dnat_rule_has_no_interface_so_a_lan_host_going_to_any_443_is_sent_to_10_0_1_50()
    {
        var rig = new NatRig(Gateway);
        PacketResult r = rig.In("eth1", Syn("10.0.1.20", S, 40001, 443));
        NatRig.Outputs(r).ShouldBe("eth1 10.0.1.20:40001 > 10.0.1.50:8443 S");
        rig.Listing.ShouldBe("tcp      6 120 SYN_SENT src=10.0.1.20 dst=93.184.216.34 sport=40001 dport=443 [UNREPLIED] src=10.0.1.50 dst=10.0.1.20 sport=8443 dport=40001 mark=0 use=1");
        NatRig.Changes(r).ShouldBe(["DNAT 93.184.216.34:443 -> 10.0.1.50:8443"]);
    }

    [Fact]
    public void Snat_to_an_address_range_picks_the_address_by_hash_as_the_kernel_did()
    {
        string rules = Gateway.Replace("-A POSTROUTING -s 10.0.1.0/24 -o eth0 -j MASQUERADE",
            "-A POSTROUTING -s 10.0.1.0/24 -o eth0 -j SNAT --to-source 198.51.100.10-198.51.100.12\n-A POSTROUTING -s 10.0.1.0/24 -o eth0 -j MASQUERADE", StringComparison.Ordinal);
        var rig = new NatRig(rules);
        // Recorded: hosts .20 to .25 from port 41000 to 93.184.216.34:80; a port moves when its address:port was taken.
        (string Host, string Address, bool PortKept)[] expected =
        [
            ("10.0.1.20", "198.51.100.11", true), ("10.0.1.21", "198.51.100.10", true), ("10.0.1.22", "198.51.100.11", false),
            ("10.0.1.23", "198.51.100.10", false), ("10.0.1.24", "198.51.100.10", false), ("10.0.1.25", "198.51.100.10", false),
        ];
        foreach (var (host, address, kept) in expected)
        {
            Packet o = rig.In("eth1", Syn(host, S, 41000, 80)).Outputs.Single().Packet;
            IpNet.FormatAddress(o.Source, IpFamily.V4).ShouldBe(address, host);
            (o.SourcePort == 41000).ShouldBe(kept, host);
            if (!kept) o.SourcePort.ShouldBeGreaterThanOrEqualTo((ushort)1024, host);
        }
        // The same source to another destination: the earlier mapping of 10.0.1.20:41000 again (recorded).
        rig.In("eth1", Syn("10.0.1.20", "198.51.100.77", 41000, 80));
        rig.Listing.Split('\n')[0].ShouldBe("tcp      6 120 SYN_SENT src=10.0.1.20 dst=198.51.100.77 sport=41000 dport=80 [UNREPLIED] src=198.51.100.77 dst=198.51.100.11 sport=80 dport=41000 mark=0 use=1");
    }

    [Fact]
    public void Redirect_sends_a_forwarded_connection_to_the_incoming_interfaces_address_and_port()
    {
        string rules = Gateway.Replace("-A PREROUTING -p tcp", "-A PREROUTING -i eth1 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 3128\n-A PREROUTING -p tcp", StringComparison.Ordinal);
        var rig = new NatRig(rules);
        PacketResult r = rig.In("eth1", Syn("10.0.1.20", S, 40002, 80));
        r.Fate.ShouldBe(["delivered-local"]);
        rig.Listing.ShouldBe("tcp      6 120 SYN_SENT src=10.0.1.20 dst=93.184.216.34 sport=40002 dport=80 [UNREPLIED] src=10.0.1.1 dst=10.0.1.20 sport=3128 dport=40002 mark=0 use=1");
        NatRig.Changes(r).ShouldBe(["DNAT 93.184.216.34:80 -> 10.0.1.1:3128"]);

        // The gateway's own answer (the kernel's RST, recorded) is un-DNATed on its way out: it comes from 93.184.216.34:80.
        PacketResult rst = rig.Local(PacketBuilder.Ipv4("10.0.1.1", "10.0.1.20").Tcp(3128, 40002, TcpFlags.Rst | TcpFlags.Ack, 0, 1001).Build());
        NatRig.Outputs(rst).ShouldBe("eth1 93.184.216.34:80 > 10.0.1.20:40002 RA");
    }

    [Fact]
    public void Redirect_in_output_goes_to_the_loopback_address()
    {
        var rig = new NatRig("*nat\n-A OUTPUT -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 8080\nCOMMIT\n");
        PacketResult r = rig.Local(Syn("198.51.100.2", S, 45000, 80));
        r.Fate.ShouldBe(["delivered-local"]);
        rig.Listing.ShouldBe("tcp      6 120 SYN_SENT src=198.51.100.2 dst=93.184.216.34 sport=45000 dport=80 [UNREPLIED] src=127.0.0.1 dst=198.51.100.2 sport=8080 dport=45000 mark=0 use=1");
    }

    private const string NetmapRules = "*nat\n-A PREROUTING -d 192.0.2.0/24 -j NETMAP --to 10.0.1.0/24\n-A POSTROUTING -s 10.0.1.0/24 -o eth0 -j NETMAP --to 192.0.2.0/24\nCOMMIT\n"
        + "*filter\n:FORWARD DROP [0:0]\n-A FORWARD -i eth1 -o eth0 -j ACCEPT\n-A FORWARD -i eth0 -o eth1 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\nCOMMIT\n";

    [Fact]
    public void Netmap_maps_the_host_part_into_the_other_network_both_ways()
    {
        var rig = new NatRig(NetmapRules);
        // In: mapped to 10.0.1.50, then dropped by FORWARD (not ESTABLISHED): no entry is confirmed (recorded).
        PacketResult inbound = rig.In("eth0", Syn("203.0.113.9", "192.0.2.50", 52000, 22));
        inbound.Fate.ShouldBe(["dropped"]);
        NatRig.Changes(inbound).ShouldBe(["DNAT 192.0.2.50:22 -> 10.0.1.50:22"]);
        rig.Listing.ShouldBe("");
        // Out: the source's host part kept in 192.0.2.0/24 (recorded).
        NatRig.Outputs(rig.In("eth1", Syn("10.0.1.21", S, 40003, 80))).ShouldBe("eth0 192.0.2.21:40003 > 93.184.216.34:80 S");
        rig.Listing.ShouldBe("tcp      6 120 SYN_SENT src=10.0.1.21 dst=93.184.216.34 sport=40003 dport=80 [UNREPLIED] src=93.184.216.34 dst=192.0.2.21 sport=80 dport=40003 mark=0 use=1");
    }

    [Fact]
    public void Ipv6_masquerade_takes_the_out_interfaces_address_and_unnats_the_reply()
    {
        var rig = new NatRig("", "*nat\n-A POSTROUTING -s fd00:1::/64 -o eth0 -j MASQUERADE\nCOMMIT\n");
        PacketResult r = rig.In("eth1", PacketBuilder.Ipv6("fd00:1::20", "2001:db8:200::1").Udp(5000, 53).Payload("x"u8).Build());
        NatRig.Outputs(r).ShouldBe("eth0 [2001:db8:100::2]:5000 > [2001:db8:200::1]:53");
        rig.Listing.ShouldBe("udp      17 30 src=fd00:1::20 dst=2001:db8:200::1 sport=5000 dport=53 [UNREPLIED] src=2001:db8:200::1 dst=2001:db8:100::2 sport=53 dport=5000 mark=0 use=1");
        PacketResult reply = rig.In("eth0", PacketBuilder.Ipv6("2001:db8:200::1", "2001:db8:100::2").Udp(53, 5000).Payload("x"u8).Build());
        NatRig.Outputs(reply).ShouldBe("eth1 [2001:db8:200::1]:53 > [fd00:1::20]:5000");
        rig.Listing.ShouldBe("udp      17 30 src=fd00:1::20 dst=2001:db8:200::1 sport=5000 dport=53 src=2001:db8:200::1 dst=2001:db8:100::2 sport=53 dport=5000 mark=0 use=1");

        // An ICMPv6 error about it from the internet goes back to the LAN host, translated (recorded).
        byte[] error = PacketBuilder.Ipv6("2001:db8:100::1", "2001:db8:100::2").IcmpError(1, 0, PacketBuilder.Quote(r.Outputs[0].Bytes, IpFamily.V6)).Build();
        NatRig.Outputs(rig.In("eth0", error)).ShouldBe("eth1 2001:db8:100::1 > fd00:1::20 icmp 1 quoting [fd00:1::20]:5000 > [2001:db8:200::1]:53");
    }
}

/// <summary>More recorded cases: DNAT to an address range, an exhausted SNAT port range, ping through MASQUERADE, MASQUERADE --to-ports.</summary>
public class NatRangeTests
{
    private const string S = "93.184.216.34";

    private static string Gateway => NatGatewayTests.GatewayRules;

    private static byte[] Syn(string src, string dst, ushort sport, ushort dport) =>
        PacketBuilder.Ipv4(src, dst).Tcp(sport, dport, TcpFlags.Syn, 1000, 0).Build();

    [Fact]
    public void Dnat_to_an_address_range_picks_the_server_by_hash_as_the_kernel_did()
    {
        string rules = Gateway.Replace("-A PREROUTING -p tcp", "-A PREROUTING -i eth0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.1.50-10.0.1.52:8443\n-A PREROUTING -p tcp", StringComparison.Ordinal)
            .Replace("-A FORWARD -i eth1 -o eth0 -j ACCEPT", "-A FORWARD -p tcp -m tcp --dport 8443 -j ACCEPT\n-A FORWARD -i eth1 -o eth0 -j ACCEPT", StringComparison.Ordinal);
        var rig = new NatRig(rules);
        string[] recorded = ["10.0.1.51", "10.0.1.52", "10.0.1.50", "10.0.1.50", "10.0.1.51", "10.0.1.51"];
        for (int h = 1; h <= 6; h++)
        {
            string client = "203.0.113." + h.ToString(System.Globalization.CultureInfo.InvariantCulture);
            NatRig.Outputs(rig.In("eth0", Syn(client, "198.51.100.2", 53000, 8080))).ShouldBe($"eth1 {client}:53000 > {recorded[h - 1]}:8443 S", client);
        }
    }

    [Fact]
    public void Snat_to_a_port_range_drops_a_connection_when_no_port_is_free()
    {
        string rules = Gateway.Replace("-A POSTROUTING -s 10.0.1.0/24 -o eth0 -j MASQUERADE",
            "-A POSTROUTING -s 10.0.1.0/24 -o eth0 -p tcp -j SNAT --to-source 198.51.100.2:5000-5001\n-A POSTROUTING -s 10.0.1.0/24 -o eth0 -j MASQUERADE", StringComparison.Ordinal);
        var rig = new NatRig(rules);
        int a = rig.In("eth1", Syn("10.0.1.20", S, 42000, 80)).Outputs.Single().Packet.SourcePort;
        int b = rig.In("eth1", Syn("10.0.1.21", S, 42000, 80)).Outputs.Single().Packet.SourcePort;
        new[] { a, b }.Order().ShouldBe([5000, 5001]);
        // Recorded: the third finds both ports taken; the clash is found when its entry is confirmed, and it is dropped.
        PacketResult third = rig.In("eth1", Syn("10.0.1.22", S, 42000, 80));
        third.Outputs.ShouldBeEmpty();
        third.Fate.ShouldBe(["dropped"]);
        rig.Listing.Split('\n').Length.ShouldBe(2);
    }

    [Fact]
    public void Ping_through_masquerade_keeps_a_free_echo_id_and_moves_a_taken_one()
    {
        var rig = new NatRig(Gateway);
        NatRig.Outputs(rig.In("eth1", PacketBuilder.Ipv4("10.0.1.20", S).IcmpEcho(77, 1).Build())).ShouldBe("eth0 198.51.100.2 > 93.184.216.34 icmp 8 id 77");
        rig.Listing.ShouldBe("icmp     1 30 src=10.0.1.20 dst=93.184.216.34 type=8 code=0 id=77 [UNREPLIED] src=93.184.216.34 dst=198.51.100.2 type=0 code=0 id=77 mark=0 use=1");
        // Recorded: the kernel moves the second host's id 77 to a random one.
        Packet second = rig.In("eth1", PacketBuilder.Ipv4("10.0.1.21", S).IcmpEcho(77, 1).Build()).Outputs.Single().Packet;
        second.IcmpId.ShouldNotBe((ushort)77);
        rig.Listing.Split('\n')[0].ShouldBe($"icmp     1 30 src=10.0.1.21 dst=93.184.216.34 type=8 code=0 id=77 [UNREPLIED] src=93.184.216.34 dst=198.51.100.2 type=0 code=0 id={second.IcmpId} mark=0 use=1");
        NatRig.Outputs(rig.In("eth0", PacketBuilder.Ipv4(S, "198.51.100.2").IcmpEcho(second.IcmpId, 1, reply: true).Build())).ShouldBe("eth1 93.184.216.34 > 10.0.1.21 icmp 0 id 77");
        NatRig.Outputs(rig.In("eth0", PacketBuilder.Ipv4(S, "198.51.100.2").IcmpEcho(77, 1, reply: true).Build())).ShouldBe("eth1 93.184.216.34 > 10.0.1.20 icmp 0 id 77");
    }

    [Fact]
    public void Masquerade_to_ports_takes_a_port_of_its_range()
    {
        string rules = Gateway.Replace("-A POSTROUTING -s 10.0.1.0/24 -o eth0 -j MASQUERADE",
            "-A POSTROUTING -s 10.0.1.0/24 -o eth0 -p udp -j MASQUERADE --to-ports 20000-20009\n-A POSTROUTING -s 10.0.1.0/24 -o eth0 -j MASQUERADE", StringComparison.Ordinal);
        var rig = new NatRig(rules);
        // Recorded: a port of the range, from a random start.
        Packet o = rig.In("eth1", PacketBuilder.Ipv4("10.0.1.20", S).Udp(5000, 53).Payload("x"u8).Build()).Outputs.Single().Packet;
        o.SourcePort.ShouldBeInRange((ushort)20000, (ushort)20009);
        rig.Listing.ShouldBe($"udp      17 30 src=10.0.1.20 dst=93.184.216.34 sport=5000 dport=53 [UNREPLIED] src=93.184.216.34 dst=198.51.100.2 sport=53 dport={o.SourcePort} mark=0 use=1");
    }

    [Fact]
    public void A_masqueraded_connection_that_leaves_by_another_interface_is_killed()
    {
        var rig = new NatRig("*nat\n-A POSTROUTING -o eth+ -j MASQUERADE\nCOMMIT\n", network: [.. NatRig.Gateway, "ip link add eth2 type dummy", "ip link set eth2 up", "ip addr add 203.0.113.1/24 dev eth2"]);
        NatRig.Outputs(rig.In("eth1", Syn("10.0.1.20", S, 40000, 80))).ShouldBe("eth0 198.51.100.2:40000 > 93.184.216.34:80 S");
        // The route changes: the next packet of the connection would leave by eth2 (nf_nat_oif_changed).
        Chainwalk.Host.Network.DeleteRoute(rig.Host, IpFamily.V4, 0, 0, null, null, null, null);
        Chainwalk.Host.Network.AddRoute(rig.Host, new Chainwalk.Host.Route(IpFamily.V4, 0, 0, "eth2", 0xcb0071fe, null));
        // A retransmitted SYN: still NEW, already bound, now routed by eth2.
        PacketResult r = rig.In("eth1", Syn("10.0.1.20", S, 40000, 80));
        r.Fate.ShouldBe(["dropped"]);
        rig.Listing.ShouldBe("");
    }
}

/// <summary>Recorded: hairpin with MASQUERADE, --persistent, a shifted port map, SNAT --random, IPv6 REDIRECT.</summary>
public class NatOptionTests
{
    private const string S = "93.184.216.34";

    private static string Gateway => NatGatewayTests.GatewayRules;

    private static byte[] Syn(string src, string dst, ushort sport, ushort dport) =>
        PacketBuilder.Ipv4(src, dst).Tcp(sport, dport, TcpFlags.Syn, 1000, 0).Build();

    [Fact]
    public void Hairpin_masquerade_makes_the_server_answer_the_gateway_and_the_lab_forward_rules_drop_that_answer()
    {
        string rules = Gateway.Replace("-A POSTROUTING -s 10.0.1.0/24 -o eth0 -j MASQUERADE",
            "-A POSTROUTING -s 10.0.1.0/24 -d 10.0.1.50/32 -p tcp -m tcp --dport 8443 -j MASQUERADE\n-A POSTROUTING -s 10.0.1.0/24 -o eth0 -j MASQUERADE", StringComparison.Ordinal);
        var rig = new NatRig(rules);
        PacketResult syn = rig.In("eth1", Syn("10.0.1.20", "198.51.100.2", 40005, 443));
        NatRig.Outputs(syn).ShouldBe("eth1 10.0.1.1:40005 > 10.0.1.50:8443 S");
        NatRig.Changes(syn).ShouldBe(["DNAT 198.51.100.2:443 -> 10.0.1.50:8443", "SNAT 10.0.1.20:40005 -> 10.0.1.1:40005"]);
        rig.Listing.ShouldBe("tcp      6 120 SYN_SENT src=10.0.1.20 dst=198.51.100.2 sport=40005 dport=443 [UNREPLIED] src=10.0.1.50 dst=10.0.1.1 sport=8443 dport=40005 mark=0 use=1");
        // The answer is un-NATed to 198.51.100.2:443 > 10.0.1.20:40005, then FORWARD (eth1 to eth1) drops it (recorded).
        PacketResult synAck = rig.In("eth1", PacketBuilder.Ipv4("10.0.1.50", "10.0.1.1").Tcp(8443, 40005, TcpFlags.Syn | TcpFlags.Ack, 5000, 1001).Build());
        synAck.Fate.ShouldBe(["dropped"]);
        NatRig.Changes(synAck).ShouldBe(["un-SNAT (reply destination) 10.0.1.1:40005 -> 10.0.1.20:40005"]);
        rig.Listing.ShouldBe("tcp      6 60 SYN_RECV src=10.0.1.20 dst=198.51.100.2 sport=40005 dport=443 src=10.0.1.50 dst=10.0.1.1 sport=8443 dport=40005 mark=0 use=1");
    }

    [Fact]
    public void Persistent_dnat_hashes_the_client_address_only()
    {
        string rules = Gateway.Replace("-A PREROUTING -p tcp", "-A PREROUTING -i eth0 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.1.50-10.0.1.52:8443 --persistent\n-A PREROUTING -p tcp", StringComparison.Ordinal)
            .Replace("-A FORWARD -i eth1 -o eth0 -j ACCEPT", "-A FORWARD -p tcp -m tcp --dport 8443 -j ACCEPT\n-A FORWARD -i eth1 -o eth0 -j ACCEPT", StringComparison.Ordinal);
        var rig = new NatRig(rules);
        string[] recorded = ["10.0.1.52", "10.0.1.52", "10.0.1.50", "10.0.1.51", "10.0.1.51", "10.0.1.50"];
        for (int h = 1; h <= 6; h++)
        {
            string client = "203.0.113." + h.ToString(System.Globalization.CultureInfo.InvariantCulture);
            NatRig.Outputs(rig.In("eth0", Syn(client, "198.51.100.2", 53000, 8080))).ShouldBe($"eth1 {client}:53000 > {recorded[h - 1]}:8443 S", client);
        }
    }

    [Fact]
    public void A_shifted_port_map_keeps_the_offset_from_the_base_port()
    {
        string rules = Gateway.Replace("-A PREROUTING -p tcp", "-A PREROUTING -i eth0 -p tcp -m tcp --dport 8000:8099 -j DNAT --to-destination 10.0.1.50:9000-9099/8000\n-A PREROUTING -p tcp", StringComparison.Ordinal)
            .Replace("-A FORWARD -i eth1 -o eth0 -j ACCEPT", "-A FORWARD -p tcp -m tcp --dport 9000:9099 -j ACCEPT\n-A FORWARD -i eth1 -o eth0 -j ACCEPT", StringComparison.Ordinal);
        var rig = new NatRig(rules);
        NatRig.Outputs(rig.In("eth0", Syn("203.0.113.9", "198.51.100.2", 53001, 8005))).ShouldBe("eth1 203.0.113.9:53001 > 10.0.1.50:9005 S");
        rig.Listing.ShouldBe("tcp      6 120 SYN_SENT src=203.0.113.9 dst=198.51.100.2 sport=53001 dport=8005 [UNREPLIED] src=10.0.1.50 dst=203.0.113.9 sport=9005 dport=53001 mark=0 use=1");
    }

    [Fact]
    public void Snat_random_moves_even_a_free_port()
    {
        string rules = Gateway.Replace("-A POSTROUTING -s 10.0.1.0/24 -o eth0 -j MASQUERADE",
            "-A POSTROUTING -s 10.0.1.0/24 -o eth0 -j SNAT --to-source 198.51.100.2 --random", StringComparison.Ordinal);
        var rig = new NatRig(rules);
        // Recorded: 43000 left as a random port in 1024-65535.
        PacketResult r = rig.In("eth1", Syn("10.0.1.20", S, 43000, 80));
        Packet o = r.Outputs.Single().Packet;
        o.SourcePort.ShouldNotBe((ushort)43000);
        o.SourcePort.ShouldBeGreaterThanOrEqualTo((ushort)1024);
        NatRig.Notes(r).ShouldContain(n => n.EndsWith($"(random port {o.SourcePort} (--random))", StringComparison.Ordinal));
    }

    [Fact]
    public void Ipv6_dnat_to_a_bracketed_address_and_port()
    {
        var rig = new NatRig("", "*nat\n-A PREROUTING -i eth0 -p udp -m udp --dport 5353 -j DNAT --to-destination [fd00:1::50]:53\nCOMMIT\n");
        PacketResult r = rig.In("eth0", PacketBuilder.Ipv6("2001:db8:200::1", "2001:db8:100::2").Udp(5002, 5353).Payload("x"u8).Build());
        // Recorded.
        NatRig.Outputs(r).ShouldBe("eth1 [2001:db8:200::1]:5002 > [fd00:1::50]:53");
        rig.Listing.ShouldBe("udp      17 30 src=2001:db8:200::1 dst=2001:db8:100::2 sport=5002 dport=5353 [UNREPLIED] src=fd00:1::50 dst=2001:db8:200::1 sport=53 dport=5002 mark=0 use=1");
        NatRig.Outputs(rig.In("eth1", PacketBuilder.Ipv6("fd00:1::50", "2001:db8:200::1").Udp(53, 5002).Payload("y"u8).Build()))
            .ShouldBe("eth0 [2001:db8:100::2]:5353 > [2001:db8:200::1]:5002");
    }

    [Fact]
    public void Icmpv6_echo_ids_are_remapped_with_the_pseudo_header_checksum_kept_right()
    {
        var rig = new NatRig("", "*nat\n-A POSTROUTING -o eth0 -j MASQUERADE\nCOMMIT\n");
        NatRig.Outputs(rig.In("eth1", PacketBuilder.Ipv6("fd00:1::20", "2001:db8:200::1").IcmpEcho(77, 1).Build())).ShouldBe("eth0 2001:db8:100::2 > 2001:db8:200::1 icmp 128 id 77");
        Packet second = rig.In("eth1", PacketBuilder.Ipv6("fd00:1::21", "2001:db8:200::1").IcmpEcho(77, 1).Build()).Outputs.Single().Packet;
        second.IcmpId.ShouldNotBe((ushort)77);
        second.TransportChecksumValid.ShouldBeTrue();
        NatRig.Outputs(rig.In("eth0", PacketBuilder.Ipv6("2001:db8:200::1", "2001:db8:100::2").IcmpEcho(second.IcmpId, 1, reply: true).Build()))
            .ShouldBe("eth1 2001:db8:200::1 > fd00:1::21 icmp 129 id 77");
    }

    [Fact]
    public void Ipv6_redirect_takes_the_interfaces_first_global_address()
    {
        var rig = new NatRig("", "*nat\n-A PREROUTING -i eth1 -p udp -m udp --dport 53 -j REDIRECT --to-ports 5353\nCOMMIT\n");
        PacketResult r = rig.In("eth1", PacketBuilder.Ipv6("fd00:1::20", "2001:db8:200::1").Udp(5001, 53).Payload("x"u8).Build());
        r.Fate.ShouldBe(["delivered-local"]);
        rig.Listing.ShouldBe("udp      17 30 src=fd00:1::20 dst=2001:db8:200::1 sport=5001 dport=53 [UNREPLIED] src=fd00:1::1 dst=fd00:1::20 sport=5353 dport=5001 mark=0 use=1");
    }
}

/// <summary>When NAT runs at all, and the checksums it leaves.</summary>
public class NatHookTests
{
    [Fact]
    public void Without_a_nat_table_nothing_is_bound()
    {
        var rig = new NatRig("*filter\n-A FORWARD -m conntrack --ctstate NEW -j ACCEPT\nCOMMIT\n");
        rig.In("eth1", PacketBuilder.Ipv4("10.0.1.20", "93.184.216.34").Tcp(40000, 80, TcpFlags.Syn, 1000, 0).Build()).Fate.ShouldBe(["forwarded:eth0"]);
        rig.Ct.Table.Entries.Single().Status.ShouldBe(Chainwalk.Conntrack.ConnStatus.Confirmed);
        var nat = new NatRig("*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n*filter\n-A FORWARD -m conntrack --ctstate NEW -j ACCEPT\nCOMMIT\n");
        nat.In("eth1", PacketBuilder.Ipv4("10.0.1.20", "93.184.216.34").Tcp(40000, 80, TcpFlags.Syn, 1000, 0).Build());
        nat.Ct.Table.Entries.Single().Status.ShouldBe(Chainwalk.Conntrack.ConnStatus.Confirmed | Chainwalk.Conntrack.ConnStatus.SrcNatDone | Chainwalk.Conntrack.ConnStatus.DstNatDone);
    }

    [Fact]
    public void Snat_in_input_changes_the_source_of_packets_delivered_here()
    {
        var rig = new NatRig("*nat\n-A INPUT -s 203.0.113.0/24 -j SNAT --to-source 10.99.0.1\nCOMMIT\n");
        PacketResult r = rig.In("eth0", PacketBuilder.Ipv4("203.0.113.9", "198.51.100.2").Tcp(51000, 22, TcpFlags.Syn, 1000, 0).Build());
        r.Fate.ShouldBe(["delivered-local"]);
        NatRig.Changes(r).ShouldBe(["SNAT 203.0.113.9:51000 -> 10.99.0.1:51000"]);
        rig.Listing.ShouldBe("tcp      6 120 SYN_SENT src=203.0.113.9 dst=198.51.100.2 sport=51000 dport=22 [UNREPLIED] src=198.51.100.2 dst=10.99.0.1 sport=22 dport=51000 mark=0 use=1");
        // The local answer goes back to the real client.
        NatRig.Outputs(rig.Local(PacketBuilder.Ipv4("198.51.100.2", "10.99.0.1").Tcp(22, 51000, TcpFlags.Syn | TcpFlags.Ack, 5000, 1001).Build()))
            .ShouldBe("eth0 198.51.100.2:22 > 203.0.113.9:51000 SA");
    }

    [Fact]
    public void Sctp_through_masquerade_gets_its_crc32c_recomputed()
    {
        var rig = new NatRig(NatGatewayTests.GatewayRules);
        PacketResult r = rig.In("eth1", PacketBuilder.Ipv4("10.0.1.20", "93.184.216.34").SctpInit(40000, 5060, 0x01020304).Build());
        Packet o = r.Outputs.Single().Packet;
        IpNet.FormatAddress(o.Source, IpFamily.V4).ShouldBe("198.51.100.2");
        o.SourcePort.ShouldBe((ushort)40000);
        o.TransportChecksumValid.ShouldBeTrue();
    }

    [Fact]
    public void An_icmp_error_quoting_a_whole_tcp_header_gets_the_quoted_checksum_fixed_too()
    {
        var rig = new NatRig(NatGatewayTests.GatewayRules);
        PacketResult r = rig.In("eth1", PacketBuilder.Ipv4("10.0.1.20", "93.184.216.34").Tcp(40000, 80, TcpFlags.Syn, 1000, 0).Build());
        byte[] error = PacketBuilder.Ipv4("192.0.2.1", "198.51.100.2").IcmpError(3, 1, PacketBuilder.Quote(r.Outputs[0].Bytes, IpFamily.V4)).Build();
        PacketResult back = rig.In("eth0", error);
        NatRig.Outputs(back).ShouldBe("eth1 192.0.2.1 > 10.0.1.20 icmp 3 quoting 10.0.1.20:40000 > 93.184.216.34:80");
        Packet inner = back.Outputs[0].Packet.QuotedPacket!;
        inner.IpChecksumValid.ShouldBeTrue();
        TransportChecksum.Verify(inner.TransportBytes[..20], inner.SourceBytes, inner.DestinationBytes, IpProtocol.Tcp).ShouldBeTrue();
    }

    [Fact]
    public void A_udp_datagram_without_checksum_keeps_none_after_nat()
    {
        var rig = new NatRig(NatGatewayTests.GatewayRules);
        byte[] udp = PacketBuilder.Ipv4("10.0.1.20", "93.184.216.34").Udp(5000, 53).Payload("x"u8).Build();
        udp[26] = 0;
        udp[27] = 0;
        Packet o = rig.In("eth1", udp).Outputs.Single().Packet;
        IpNet.FormatAddress(o.Source, IpFamily.V4).ShouldBe("198.51.100.2");
        o.Bytes[26].ShouldBe((byte)0);
        o.Bytes[27].ShouldBe((byte)0);
        o.IpChecksumValid.ShouldBeTrue();
    }

    [Theory]
    [InlineData(0x1234, 0x0a000114u, 0xc6336402u)]
    [InlineData(0xffff, 0x00000000u, 0x00000000u)]
    [InlineData(0x0000, 0xffffffffu, 0x00000000u)]
    [InlineData(0xabcd, 0xc0a80001u, 0xc0a80001u)]
    public void The_incremental_update_gives_the_checksum_a_full_recomputation_gives(int check, uint from, uint to)
    {
        // A 20-byte block whose bytes 12-15 change from 'from' to 'to'; its stored checksum is right before.
        var block = new byte[20];
        for (int i = 0; i < block.Length; i++) block[i] = (byte)(i * 37 + check);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(block.AsSpan(12), from);
        block[10] = block[11] = 0;
        ushort before = Checksum.Compute(block);
        ushort updated = Chainwalk.Nat.NatPacket.Replace(before, from, to);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(block.AsSpan(12), to);
        ushort full = Checksum.Compute(block);
        // Ones' complement has two zeros; both verify.
        (updated == full || (updated ^ full) == 0xffff && (updated == 0 || full == 0)).ShouldBeTrue($"{updated:x4} vs {full:x4}");
    }
}

/// <summary>Bindings saved with the host's conntrack table and used again after loading; IPv6 NETMAP.</summary>
public class NatStateTests
{
    [Fact]
    public void A_masqueraded_connection_saved_and_loaded_keeps_its_binding_and_interface()
    {
        var rig = new NatRig(NatGatewayTests.GatewayRules);
        rig.In("eth1", PacketBuilder.Ipv4("10.0.1.20", "93.184.216.34").Tcp(40000, 80, TcpFlags.Syn, 1000, 0).Build());
        string text = Chainwalk.Conntrack.ConntrackStore.Format(rig.Ct.Table, rig.Nf.State.Now);
        text.ShouldContain(" masq=eth0");
        Chainwalk.Conntrack.ConntrackTable back = Chainwalk.Conntrack.ConntrackStore.Parse(text);
        Chainwalk.Conntrack.ConntrackStore.Format(back, rig.Nf.State.Now).ShouldBe(text);

        var nf2 = new Netfilter(rig.Host) { RecordTrace = true };
        Chainwalk.Conntrack.ConntrackLoader.Enable(nf2, back).ShouldNotBeNull();
        PacketResult reply = nf2.Process(EngineHost.In("eth0", PacketBuilder.Ipv4("93.184.216.34", "198.51.100.2").Tcp(80, 40000, TcpFlags.Syn | TcpFlags.Ack, 5000, 1001).Build()));
        NatRig.Outputs(reply).ShouldBe("eth1 93.184.216.34:80 > 10.0.1.20:40000 SA");
        back.Entries.Single().MasqueradeDevice.ShouldBe("eth0");
    }

    [Theory]
    [InlineData("link down", true)]
    [InlineData("address removed", true)]
    [InlineData("nothing changed", false)]
    public void Masqueraded_connections_die_with_their_interface_or_address(string change, bool dies)
    {
        var rig = new NatRig(NatGatewayTests.GatewayRules);
        rig.In("eth1", PacketBuilder.Ipv4("10.0.1.20", "93.184.216.34").Tcp(40000, 80, TcpFlags.Syn, 1000, 0).Build());
        // A connection DNATed, not masqueraded, is not touched (recorded for the address removal).
        rig.In("eth0", PacketBuilder.Ipv4("203.0.113.9", "198.51.100.2").Tcp(51000, 443, TcpFlags.Syn, 1000, 0).Build());
        string text = Chainwalk.Conntrack.ConntrackStore.Format(rig.Ct.Table, rig.Nf.State.Now);
        if (change == "link down") Chainwalk.Host.Network.SetUp(rig.Host, "eth0", false);
        if (change == "address removed") Chainwalk.Host.Network.DeleteAddress(rig.Host, "eth0", IpFamily.V4, 0xc6336402, 24);
        var nf2 = new Netfilter(rig.Host);
        Chainwalk.Conntrack.ConntrackHooks hooks = Chainwalk.Conntrack.ConntrackLoader.Enable(nf2, Chainwalk.Conntrack.ConntrackStore.Parse(text))!;
        hooks.Table.Count.ShouldBe(dies ? 1 : 2, change);
        hooks.Table.Entries.Any(e => e.MasqueradeDevice is not null).ShouldBe(!dies, change);
    }

    [Fact]
    public void Ipv6_netmap_maps_the_interface_identifier_into_the_other_prefix()
    {
        var rig = new NatRig("", "*nat\n-A POSTROUTING -s fd00:1::/64 -o eth0 -j NETMAP --to 2001:db8:100::/64\nCOMMIT\n");
        PacketResult r = rig.In("eth1", PacketBuilder.Ipv6("fd00:1::20", "2001:db8:200::1").Tcp(40000, 443, TcpFlags.Syn, 1000, 0).Build());
        NatRig.Outputs(r).ShouldBe("eth0 [2001:db8:100::20]:40000 > [2001:db8:200::1]:443 S");
        rig.Listing.ShouldBe("tcp      6 120 SYN_SENT src=fd00:1::20 dst=2001:db8:200::1 sport=40000 dport=443 [UNREPLIED] src=2001:db8:200::1 dst=2001:db8:100::20 sport=443 dport=40000 mark=0 use=1");
        NatRig.Outputs(rig.In("eth0", PacketBuilder.Ipv6("2001:db8:200::1", "2001:db8:100::20").Tcp(443, 40000, TcpFlags.Syn | TcpFlags.Ack, 5000, 1001).Build()))
            .ShouldBe("eth1 [2001:db8:200::1]:443 > [fd00:1::20]:40000 SA");
    }
}
