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
/// tables, per-device settings and parsed sysctls are made again after any change of the host (HostGeneration),
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
            long g = HostGeneration.Value;
            action();
            HostGeneration.Value.ShouldBeGreaterThan(g, what);
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
}
