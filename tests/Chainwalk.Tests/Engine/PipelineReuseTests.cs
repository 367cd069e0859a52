using Chainwalk.Engine;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// What the pipeline keeps between packets to go fast must never outlive the host it was derived from: routing
/// tables, per-device settings and parsed sysctls are made again after any change of the host (VirtualHost.Generation),
/// seen by the very next packet of the same Netfilter. And a packet changed in place (TTL, NAT) reads the same
/// facts as a fresh parse of its bytes.
/// </summary>
public class PipelineReuseTests
{
    private const string Accept = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";

    public static TheoryData<string, string, string, string, string> HostChanges => new()
    {
        // change, source, destination, fate before, fate after
        { "sysctl net.ipv4.conf.eth1.forwarding=0", "192.168.1.50", "8.8.8.8", "forwarded:eth0", "dropped" },
        { "route 172.16.0.0/16 dev eth1", "10.0.0.50", "172.16.1.1", "forwarded:eth0", "forwarded:eth1" },
        { "address 172.16.1.1/16 on eth1", "192.168.1.50", "172.16.1.1", "forwarded:eth0", "delivered-local" },
        { "sysctl net.ipv4.conf.all.rp_filter=1", "10.0.0.77", "8.8.8.8", "forwarded:eth0", "dropped" },
        { "eth0 mtu 100", "192.168.1.50", "8.8.8.8", "forwarded:eth0", "dropped" },
        { "eth1 down", "192.168.1.50", "10.0.0.1", "delivered-local", "dropped" },
    };

    [Theory]
    [MemberData(nameof(HostChanges))]
    public void A_change_of_the_host_is_seen_by_the_next_packet_of_the_same_netfilter(string change, string src, string dst, string before, string after)
    {
        VirtualHost host = EngineHost.Create(Accept);
        var nf = new Netfilter(host);
        // In on eth1 (the 192.168.1.0/24 side) unless the source is on eth0's side; 120 bytes, DF set.
        string iface = src.StartsWith("10.", StringComparison.Ordinal) && change.Contains("rp_filter", StringComparison.Ordinal) ? "eth1" : src.StartsWith("10.", StringComparison.Ordinal) ? "eth0" : "eth1";
        byte[] Packet() => PacketBuilder.Ipv4(src, dst).DontFragment().Udp(1000, 53).PayloadLength(92).Build();
        nf.Process(EngineHost.In(iface, Packet())).Fate.ShouldBe([before]);
        switch (change)
        {
            case "sysctl net.ipv4.conf.eth1.forwarding=0": host.Sysctls["net.ipv4.conf.eth1.forwarding"] = "0"; break;
            case "sysctl net.ipv4.conf.all.rp_filter=1": host.Sysctls["net.ipv4.conf.all.rp_filter"] = "1"; break;
            case "route 172.16.0.0/16 dev eth1": host.Routes.Add(new Route(IpFamily.V4, 0xac100000, 16, "eth1", null, null)); break;
            case "address 172.16.1.1/16 on eth1": host.Addresses.Add(new InterfaceAddress("eth1", IpFamily.V4, 0xac100101, 16)); break;
            case "eth0 mtu 100": host.FindLink("eth0")!.Mtu = 100; break;
            case "eth1 down": host.FindLink("eth1")!.Up = false; break;
            default: throw new ArgumentException(change);
        }
        nf.Process(EngineHost.In(iface, Packet())).Fate.ShouldBe([after]);
    }

    [Fact]
    public void An_ipv6_route_added_between_two_packets_is_used_by_the_second()
    {
        VirtualHost host = EngineHost.Create("", "*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n",
            "ip link add eth0 type dummy", "ip link set eth0 up", "ip addr add 2001:db8:1::1/64 dev eth0 nodad",
            "ip link add eth1 type dummy", "ip link set eth1 up", "ip addr add 2001:db8:2::1/64 dev eth1 nodad",
            "sysctl -w net.ipv6.conf.all.forwarding=1");
        var nf = new Netfilter(host);
        byte[] Packet() => PacketBuilder.Ipv6("2001:db8:2::5", "2001:db8:9::1").Udp(1000, 53).Build();
        nf.Process(EngineHost.In("eth1", Packet())).Fate.ShouldBe(["dropped"]);
        IpNet.TryParseStrict("2001:db8:9::", IpFamily.V6, out UInt128 prefix).ShouldBeTrue();
        IpNet.TryParseStrict("2001:db8:1::9", IpFamily.V6, out UInt128 via).ShouldBeTrue();
        host.Routes.Add(new Route(IpFamily.V6, prefix, 48, "eth0", via, null, 1024));
        nf.Process(EngineHost.In("eth1", Packet())).Fate.ShouldBe(["forwarded:eth0"]);
    }

    [Fact]
    public void Every_mutating_call_on_the_host_collections_moves_the_generation()
    {
        VirtualHost host = VirtualHost.CreateFresh();
        var calls = new (string What, Action Do)[]
        {
            ("Links.Add", () => host.Links.Add(new Link { Name = "x0" })),
            ("Link.Up", () => host.FindLink("x0")!.Up = true),
            ("Link.Name", () => host.FindLink("x0")!.Name = "x1"),
            ("Addresses.Add", () => host.Addresses.Add(new InterfaceAddress("x1", IpFamily.V4, 0x0a000001, 8))),
            ("Addresses[0] =", () => host.Addresses[0] = host.Addresses[0] with { PrefixLength = 7 }),
            ("Addresses.RemoveAll", () => host.Addresses.RemoveAll(a => a.Device == "x1")),
            ("Routes.Add", () => host.Routes.Add(new Route(IpFamily.V4, 0, 0, "x1", null, null))),
            ("Routes.RemoveAt", () => host.Routes.RemoveAt(0)),
            ("Sysctls[k] =", () => host.Sysctls["net.ipv4.ip_forward"] = "1"),
            ("Sysctls.Remove", () => host.Sysctls.Remove("net.ipv4.ip_forward")),
            ("HiddenRoutes.Add", () => host.HiddenRoutes.Add("inet local local 10.0.0.1/32 x1")),
            ("RouteTables.Add", () => host.RouteTables.Add("100")),
            ("Links.Clear", () => host.Links.Clear()),
        };
        foreach (var (what, action) in calls)
        {
            long g = host.Generation;
            action();
            host.Generation.ShouldNotBe(g, what);
        }
    }

    public static TheoryData<string> Changes => new() { "ttl", "addresses", "ports", "tos", "v6 hop limit", "v6 address" };

    [Theory]
    [MemberData(nameof(Changes))]
    public void A_packet_re_read_in_place_has_the_facts_of_a_fresh_parse(string change)
    {
        bool v6 = change.StartsWith("v6", StringComparison.Ordinal);
        byte[] bytes = v6
            ? PacketBuilder.Ipv6("2001:db8::1", "2001:db8::2").Tcp(1000, 443, TcpFlags.Syn | TcpFlags.Ack, seq: 7, ack: 9).Build()
            : PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Ttl(9).Tos(0x10).Tcp(1000, 443, TcpFlags.Syn | TcpFlags.Ack, seq: 7, ack: 9).Build();
        var skb = new Skb(Packet.Parse(bytes));
        Packet same = skb.Packet;
        byte[] b = skb.Bytes;
        switch (change)
        {
            case "ttl": b[8] = 3; break;
            case "addresses": b[12] = 172; b[19] = 99; break;
            case "ports": b[20] = 0x12; b[23] = 0x34; break;
            case "tos": b[1] = 0xb8; break;
            case "v6 hop limit": b[7] = 1; break;
            case "v6 address": b[39] = 0x77; break;
        }
        Packet.UpdateChecksums(b);
        skb.Reparse();
        skb.Packet.ShouldBeSameAs(same);
        Packet fresh = Packet.Parse(b);
        Facts(skb.Packet).ShouldBe(Facts(fresh));
    }

    public static TheoryData<string, bool> NatRewrites => new()
    {
        // what NAT rewrote, whether the facts are updated in place (else the packet is read again whole)
        { "tcp addresses and ports", true },
        { "udp source address and port", true },
        { "icmp echo id", true },
        { "non-first fragment addresses", true },
        { "v6 address", false },
        { "tcp addresses, total length shorter than the bytes", false },
    };

    [Theory]
    [MemberData(nameof(NatRewrites))]
    public void A_packet_rewritten_by_nat_has_the_facts_of_a_fresh_parse(string change, bool inPlace)
    {
        byte[] bytes = change switch
        {
            "udp source address and port" => PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Udp(1000, 53).PayloadLength(12).Build(),
            "icmp echo id" => PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Icmp(8, 0).PayloadLength(12).Build(),
            "non-first fragment addresses" => PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Fragment(64, false, 5).Udp(1000, 53).PayloadLength(16).Build(),
            "v6 address" => PacketBuilder.Ipv6("2001:db8::1", "2001:db8::2").Tcp(1000, 443, TcpFlags.Ack, seq: 7, ack: 9).Build(),
            _ => PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Ttl(9).Tcp(1000, 443, TcpFlags.Syn | TcpFlags.Ack, seq: 7, ack: 9).Build(),
        };
        var skb = new Skb(Packet.Parse(bytes));
        Packet before = skb.Packet;
        string old = Facts(before);
        byte[] b = skb.Bytes;
        switch (change)
        {
            case "tcp addresses and ports": b[12] = 172; b[19] = 99; b[20] = 0x12; b[23] = 0x34; break;
            case "udp source address and port": b[15] = 7; b[21] = 0x99; break;
            case "icmp echo id": b[16] = 192; b[24] = 0xab; b[25] = 0xcd; break;
            case "non-first fragment addresses": b[12] = 172; b[18] = 5; break;
            case "v6 address": b[39] = 0x77; break;
            case "tcp addresses, total length shorter than the bytes": b[12] = 172; b[3] -= 4; break;
        }
        int length = change.Contains("shorter", StringComparison.Ordinal) ? b.Length - 4 : b.Length;
        Packet.UpdateChecksums(b.AsSpan(0, length));
        skb.AddressesChanged();
        Packet fresh = Packet.Parse(b.AsSpan(0, length).ToArray());
        Facts(skb.Packet).ShouldBe(Facts(fresh));
        Facts(skb.Packet).ShouldNotBe(old);
        (skb.Packet.IcmpId, skb.Packet.IcmpSequence, skb.Packet.SourceMac).ShouldBe((fresh.IcmpId, fresh.IcmpSequence, fresh.SourceMac));
        if (inPlace) skb.Packet.ShouldBeSameAs(before);
        if (!inPlace && change.StartsWith("v6", StringComparison.Ordinal)) skb.Packet.ShouldBeSameAs(before);
    }

    [Fact]
    public void A_packet_whose_length_changed_is_parsed_afresh()
    {
        byte[] bytes = PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Udp(1, 2).PayloadLength(10).Build();
        var skb = new Skb(Packet.Parse(bytes));
        Packet before = skb.Packet;
        // The IP total length now says 4 bytes less than the buffer holds: the packet is cut to it, in a copy.
        skb.Bytes[3] -= 4;
        Packet.UpdateChecksums(skb.Bytes.AsSpan(0, skb.Bytes.Length - 4));
        skb.Reparse();
        skb.Packet.ShouldNotBeSameAs(before);
        skb.Packet.TotalLength.ShouldBe(bytes.Length - 4);
        skb.Bytes.Length.ShouldBe(bytes.Length - 4);
    }

    private static string Facts(Packet p) => string.Join(" ",
        p.Family, IpNet.FormatAddress(p.Source, p.Family), IpNet.FormatAddress(p.Destination, p.Family), p.Protocol, p.TotalLength, p.Ttl, p.Tos,
        p.IpChecksumValid, p.HasPorts, p.SourcePort, p.DestinationPort, p.HasTransportHeader, p.TcpFlags, p.SequenceNumber, p.AcknowledgmentNumber,
        p.Window, p.TransportOffset, p.TransportChecksumValid, p.FragmentOffset, p.MoreFragments, p.DontFragment, p.ToString());

    private const string Mixed = """
        *nat
        :PREROUTING ACCEPT [0:0]
        :INPUT ACCEPT [0:0]
        :OUTPUT ACCEPT [0:0]
        :POSTROUTING ACCEPT [0:0]
        -A PREROUTING -d 192.168.1.1/32 -p tcp --dport 8080 -j DNAT --to-destination 10.0.0.9:80
        -A POSTROUTING -o eth0 -s 192.168.1.0/24 -j MASQUERADE
        COMMIT
        *filter
        :INPUT ACCEPT [0:0]
        :FORWARD DROP [0:0]
        :OUTPUT ACCEPT [0:0]
        :CHECK - [0:0]
        -A INPUT -p tcp --dport 23 -j REJECT --reject-with tcp-reset
        -A INPUT -p udp --dport 7 -j LOG --log-prefix "echo "
        -A INPUT -p udp --dport 9 -j DROP
        -A FORWARD -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
        -A FORWARD -j CHECK
        -A CHECK -m ttl --ttl-eq 63 -p tcp -j ACCEPT
        -A CHECK -p udp -j ACCEPT
        COMMIT
        """;

    /// <summary>Packets of different kinds and lengths, so a reused result meets each after each (outputs, logs, drops, rejects, errors).</summary>
    private static IEnumerable<PacketInput> Sequence()
    {
        for (int round = 0; round < 2; round++)
        {
            ushort port = (ushort)(40000 + round);
            yield return EngineHost.In("eth1", EngineHost.Tcp("192.168.1.50", "8.8.8.8", port, 443));
            yield return EngineHost.In("eth0", PacketBuilder.Ipv4("8.8.8.8", "10.0.0.1").Ttl(50).Tcp(443, port, TcpFlags.Syn | TcpFlags.Ack, seq: 5000, ack: 1).Build());
            yield return EngineHost.In("eth1", EngineHost.Tcp("192.168.1.50", "192.168.1.1", port, 8080));
            yield return EngineHost.In("eth1", EngineHost.Tcp("192.168.1.50", "192.168.1.1", port, 23));
            yield return EngineHost.In("eth1", PacketBuilder.Ipv4("192.168.1.50", "192.168.1.1").Udp(port, 7).PayloadLength(30 + round).Build());
            yield return EngineHost.In("eth1", EngineHost.Udp("192.168.1.50", "192.168.1.1", port, 9));
            yield return EngineHost.In("eth1", PacketBuilder.Ipv4("192.168.1.50", "8.8.4.4").Udp(port, 53).PayloadLength(1600).Build());
            yield return EngineHost.In("eth1", EngineHost.Tcp("192.168.1.50", "8.8.8.8", port, 22, ttl: 1));
            yield return EngineHost.In("eth1", [0x45, 0, 0, 10]);
            yield return EngineHost.In("eth9", EngineHost.Udp("192.168.1.50", "8.8.8.8", port, 53));
            yield return EngineHost.Local(EngineHost.Udp("10.0.0.1", "10.0.0.77", port, 53));
            yield return EngineHost.In("eth1", EngineHost.Tcp("192.168.1.50", "8.8.8.8", port, 443, TcpFlags.Ack));
        }
    }

    private static string Describe(PacketResult r) => string.Join(" | ",
        string.Join(",", r.Fate), r.DropReason, r.Error, r.CtState, r.RejectedWith, r.Local, r.InputInterface,
        string.Join(";", r.Outputs.Select(o => o.Interface + " " + o.Kind + " " + Convert.ToHexString(o.Bytes))),
        string.Join(";", r.Logs), r.Connection is null ? "no connection" : "connection");

    [Fact]
    public void A_reused_result_says_for_every_packet_what_a_new_result_says()
    {
        var fresh = new Netfilter(EngineHost.Create(Mixed)) { Conntrack = new Chainwalk.Conntrack.ConntrackHooks() };
        var reusing = new Netfilter(EngineHost.Create(Mixed)) { Conntrack = new Chainwalk.Conntrack.ConntrackHooks() };
        var reused = new PacketResult();
        var seen = new HashSet<string>();
        int n = 0;
        foreach (PacketInput p in Sequence())
        {
            string expected = Describe(fresh.Process(p));
            PacketResult r = reusing.Process(p, reused);
            r.ShouldBeSameAs(reused);
            Describe(r).ShouldBe(expected, $"packet {n++}");
            seen.Add(expected.Split(" | ")[0]);
        }
        // The sequence reaches every kind of fate it is meant to (so the comparison covers them).
        foreach (string fate in new[] { "forwarded:eth0", "forwarded:eth1", "delivered-local", "rejected:tcp-reset", "dropped", "sent:eth0" }) seen.ShouldContain(fate);
        EngineHost.Counters(reusing.Host).ShouldBe(EngineHost.Counters(fresh.Host));
    }

    [Fact]
    public void A_forwarded_packet_after_the_ttl_decrement_is_seen_with_the_new_ttl()
    {
        // FORWARD's ttl match reads the packet's facts: the decrement made before FORWARD must show in them.
        var nf = new Netfilter(EngineHost.Create(Mixed));
        nf.Process(EngineHost.In("eth1", EngineHost.Tcp("192.168.1.50", "8.8.8.8", 1000, 443, ttl: 64))).Fate.ShouldBe(["forwarded:eth0"]);
        nf.Process(EngineHost.In("eth1", EngineHost.Tcp("192.168.1.50", "8.8.8.8", 1000, 443, ttl: 65))).Fate.ShouldBe(["dropped"]);
    }

    public static TheoryData<string, string> Reuses => new()
    {
        // the packet before, the packet read into its object
        { "tcp syn", "tcp ack" },
        { "udp 20", "udp 20 other" },
        { "v6 tcp", "v6 tcp other" },
        { "tcp syn", "icmp 12" },
    };

    private static byte[] Build(string what) => what switch
    {
        "tcp syn" => PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Ttl(9).Tcp(1000, 443, TcpFlags.Syn, seq: 7).Build(),
        "tcp ack" => PacketBuilder.Ipv4("10.9.0.1", "10.0.7.2").Tos(0x10).DontFragment().Tcp(2000, 80, TcpFlags.Ack, seq: 1, ack: 99).Build(),
        "udp 20" => PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Udp(1, 2).PayloadLength(20).Build(),
        "udp 20 other" => PacketBuilder.Ipv4("172.16.0.1", "10.0.0.3").Udp(53, 5353).PayloadLength(20).Build(),
        "v6 tcp" => PacketBuilder.Ipv6("2001:db8::1", "2001:db8::2").Tcp(1000, 443, TcpFlags.Syn, seq: 7).Build(),
        "v6 tcp other" => PacketBuilder.Ipv6("2001:db8::9", "2001:db8::8").Tcp(9, 10, TcpFlags.Fin | TcpFlags.Ack, seq: 70, ack: 3).Build(),
        "icmp 12" => PacketBuilder.Ipv4("10.0.0.1", "10.0.0.2").Icmp(8, 0).PayloadLength(12).Build(),
        _ => throw new ArgumentException(what),
    };

    [Theory]
    [MemberData(nameof(Reuses))]
    public void A_packet_object_reused_for_the_next_packet_has_the_facts_of_a_fresh_parse(string before, string next)
    {
        Packet p = Packet.Parse(Build(before));
        byte[] bytes = Build(next);
        // With padding after the IP length (as a link layer leaves it): only the IP packet is taken.
        byte[] padded = [.. bytes, 0xee, 0xee];
        bool reused = p.TryReuseFor(padded);
        Packet fresh = Packet.Parse(padded);
        reused.ShouldBe(fresh.Bytes.Length == Build(before).Length);
        if (reused)
        {
            Facts(p).ShouldBe(Facts(fresh));
            p.Bytes.ShouldBe(fresh.Bytes);
        }
    }

    private static byte[] Frame(string kind, byte[] ip)
    {
        byte[] dst = [0x02, 0, 0, 0, 0, 0x10], src = [0x02, 0, 0, 0, 0, 0x99];
        return kind switch
        {
            "raw" => ip,
            "ethernet" => [.. dst, .. src, (byte)((ip[0] >> 4) == 4 ? 0x08 : 0x86), (byte)((ip[0] >> 4) == 4 ? 0x00 : 0xdd), .. ip, 0, 0],
            "ethernet vlan" => [.. dst, .. src, 0x81, 0x00, 0x20, 0x07, (byte)((ip[0] >> 4) == 4 ? 0x08 : 0x86), (byte)((ip[0] >> 4) == 4 ? 0x00 : 0xdd), .. ip],
            "ethernet wrong version" => [.. dst, .. src, 0x86, 0xdd, .. ip],
            _ => throw new ArgumentException(kind),
        };
    }

    [Theory]
    [InlineData("raw")]
    [InlineData("ethernet")]
    [InlineData("ethernet vlan")]
    [InlineData("ethernet wrong version")]
    public void A_captured_packet_decoded_into_an_earlier_one_has_the_facts_of_a_fresh_decode(string kind)
    {
        // A replay decodes each record into the packet of the same IP length it decoded before.
        var spares = new Packet?[2048];
        string[] sequence = ["tcp syn", "tcp ack", "tcp syn", "v6 tcp", "v6 tcp other", "udp 20", "udp 20 other", "icmp 12"];
        foreach (string what in sequence)
        {
            byte[] frame = Frame(kind, Build(what));
            LinkType link = kind == "raw" ? LinkType.Raw : LinkType.Ethernet;
            var rec = new CaptureRecord(default, 0, link, frame.Length, frame, 0);
            bool fresh = LinkLayer.TryDecode(rec, out Packet? expected, out LinkLayerFacts expectedFacts, out string? expectedError);
            bool reused = LinkLayer.TryDecode(rec, spares, out Packet? got, out LinkLayerFacts facts, out string? error);
            reused.ShouldBe(fresh, what);
            error.ShouldBe(expectedError, what);
            facts.ShouldBe(expectedFacts, what);
            if (!fresh) continue;
            Facts(got!).ShouldBe(Facts(expected!), what);
            (got!.SourceMac, got.VlanId).ShouldBe((expected!.SourceMac, expected.VlanId), what);
            got.Bytes.ShouldBe(expected.Bytes, what);
        }
    }

    [Theory]
    [InlineData("replace")]
    [InlineData("remove")]
    [InlineData("create")]
    public void A_table_replaced_removed_or_created_between_two_packets_is_walked_by_the_second(string change)
    {
        // The walker remembers the tables of the ruleset it walked; any change of which tables exist is seen at once.
        VirtualHost host = EngineHost.Create(change == "create" ? "*mangle\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n" : Accept);
        var nf = new Netfilter(host);
        byte[] Packet() => EngineHost.Tcp("192.168.1.50", "8.8.8.8", 1000, 443);
        nf.Process(EngineHost.In("eth1", Packet())).Fate.ShouldBe(["forwarded:eth0"]);
        Chainwalk.Rules.Ruleset dropping = EngineHost.Rules(IpFamily.V4, "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n");
        switch (change)
        {
            case "replace": host.V4.Replace(dropping.Find("filter")!); break;
            case "remove": host.V4.Remove("filter"); break;
            case "create":
                Chainwalk.Rules.Table t = host.V4.GetOrCreate(Chainwalk.Rules.TableInfo.Find("filter")!);
                t.Find("FORWARD")!.Policy = "DROP";
                break;
        }
        nf.Process(EngineHost.In("eth1", Packet())).Fate.ShouldBe([change == "remove" ? "forwarded:eth0" : "dropped"]);
        if (change == "remove")
        {
            host.V4.Replace(dropping.Find("filter")!);
            nf.Process(EngineHost.In("eth1", Packet())).Fate.ShouldBe(["dropped"]);
        }
    }
}
