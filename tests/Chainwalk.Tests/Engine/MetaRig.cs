using Chainwalk.Engine;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Wire;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// A small virtual host for the metadata and stateful match tests: eth0 10.0.0.1/24 (2001:db8:1::1/64),
/// eth1 192.168.1.10/24 (2001:db8:2::1/64), a default route via eth0, forwarding on; rules given as
/// iptables-restore text. A rule "-j DROP" marks a match: the fate is then "dropped".
/// </summary>
internal static class MetaRig
{
    public const ulong PeerMac = 0x02_00_00_00_00_09;
    public const ulong Eth0Mac = 0x02_00_00_00_00_01;

    public static VirtualHost MakeHost()
    {
        VirtualHost h = VirtualHost.CreateFresh();
        h.Links.Add(new Link { Name = "eth0", Kind = "veth", Up = true, EverUp = true, Mac = "02:00:00:00:00:01", Index = 2 });
        h.Links.Add(new Link { Name = "eth1", Kind = "veth", Up = true, EverUp = true, Mac = "02:00:00:00:00:02", Index = 3 });
        h.Addresses.Add(new InterfaceAddress("eth0", IpFamily.V4, A("10.0.0.1"), 24) { Broadcast = A("10.0.0.255") });
        h.Addresses.Add(new InterfaceAddress("eth1", IpFamily.V4, A("192.168.1.10"), 24) { Broadcast = A("192.168.1.255") });
        h.Addresses.Add(new InterfaceAddress("eth0", IpFamily.V6, A("2001:db8:1::1"), 64) { NoDad = true });
        h.Addresses.Add(new InterfaceAddress("eth1", IpFamily.V6, A("2001:db8:2::1"), 64) { NoDad = true });
        h.Routes.Add(new Route(IpFamily.V4, 0, 0, "eth0", A("10.0.0.254"), null));
        h.Routes.Add(new Route(IpFamily.V6, 0, 0, "eth0", A("2001:db8:1::ff"), null));
        h.Sysctls["net.ipv4.ip_forward"] = "1";
        h.Sysctls["net.ipv6.conf.all.forwarding"] = "1";
        return h;
    }

    public static UInt128 A(string text)
    {
        IpFamily f = text.Contains(':', StringComparison.Ordinal) ? IpFamily.V6 : IpFamily.V4;
        if (!IpNet.TryParseStrict(text, f, out UInt128 a)) throw new FormatException(text);
        return a;
    }

    /// <summary>Loads restore text (a "*filter" block and its COMMIT are added when missing) into the host.</summary>
    public static void Load(VirtualHost h, string text, IpFamily family = IpFamily.V4)
    {
        if (!text.Contains('*', StringComparison.Ordinal)) text = "*filter\n" + text + "\nCOMMIT\n";
        var rs = new RestoreReader(family, family == IpFamily.V4 ? "iptables-restore" : "ip6tables-restore")
            .Apply(new Ruleset(family), text, new RestoreOptions { Counters = true });
        h.SetRules(rs);
    }

    /// <summary>A netfilter with one rule in the given chain (PREROUTING and POSTROUTING: of mangle, else of filter).</summary>
    public static Netfilter With(string chain, string rule, IpFamily family = IpFamily.V4, VirtualHost? host = null)
    {
        VirtualHost h = host ?? MakeHost();
        string table = chain is "PREROUTING" or "POSTROUTING" ? "mangle" : "filter";
        Load(h, $"*{table}\n-A {chain} {rule} -j DROP\nCOMMIT\n", family);
        return new Netfilter(h);
    }

    /// <summary>True when the rule's DROP decided (the packet was dropped by a rule).</summary>
    public static bool Matched(PacketResult r)
    {
        if (r.Error is not null) throw new InvalidOperationException(r.Error);
        return r.Fate.Contains("dropped") && r.DropReason is null;
    }

    public static byte[] Tcp4(string src = "10.0.0.9", string dst = "10.0.0.1", ushort sport = 40000, ushort dport = 22, int payload = 0) =>
        PacketBuilder.Ipv4(src, dst).Tcp(sport, dport).PayloadLength(payload).Build();

    public static PacketInput In(byte[] bytes, string dev = "eth0", double? at = null, ulong? srcMac = PeerMac, ulong? dstMac = null) =>
        new() { Bytes = bytes, InInterface = dev, At = at, SourceMac = srcMac, DestinationMac = dstMac };

    public static PacketInput Out(byte[] bytes, SocketOwner? owner = null, uint mark = 0, double? at = null) =>
        new() { Bytes = bytes, Owner = owner, Mark = mark, At = at };
}
