using System.Globalization;
using Chainwalk.Compat;
using Chainwalk.Engine;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;
using Chainwalk.Wire;
using Shouldly;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// The virtual host the target tests run packets through: eth0 10.0.0.1/24 and 2001:db8:1::1/64 (default routes
/// via 10.0.0.254 / 2001:db8:1::ff), eth1 192.168.1.10/24, and a ruleset given as iptables-restore text.
/// </summary>
internal static class TargetTestHost
{
    public const ulong PeerMac = 0x02_00_00_00_00_02;

    private static readonly string[] Setup =
    [
        "ip link add eth0 type veth peer name eth0p",
        "ip link add eth1 type veth peer name eth1p",
        "ip addr add 10.0.0.1/24 dev eth0",
        "ip addr add 192.168.1.10/24 dev eth1",
        "ip link set eth0p up",
        "ip link set eth0 up",
        "ip link set eth1p up",
        "ip link set eth1 up",
        "ip -6 addr add 2001:db8:1::1/64 dev eth0 nodad",
        "ip route add default via 10.0.0.254",
        "ip -6 route add default via 2001:db8:1::ff",
    ];

    public static VirtualHost Create(string? v4Rules = null, string? v6Rules = null, params string[] extra)
    {
        string dir = Directory.CreateTempSubdirectory("cw-targets-").FullName;
        VirtualHost host;
        try
        {
            var store = new HostStore(dir);
            foreach (string line in Setup.Concat(extra))
            {
                string[] argv = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                var output = new StringWriter();
                var io = new ToolIo { In = TextReader.Null, Out = output, Err = output };
                int rc = argv[0] == "sysctl" ? SysctlCompat.Run(argv, store, io) : IpCompat.Run(argv, store, io);
                rc.ShouldBe(0, line + ": " + output);
            }
            host = store.LoadNetwork();
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
        if (v4Rules is not null)
            host.V4 = new RestoreReader(IpFamily.V4, "iptables-restore").Apply(new Ruleset(IpFamily.V4), v4Rules, new RestoreOptions { Counters = true });
        if (v6Rules is not null)
            host.V6 = new RestoreReader(IpFamily.V6, "ip6tables-restore").Apply(new Ruleset(IpFamily.V6), v6Rules, new RestoreOptions { Counters = true });
        return host;
    }

    /// <summary>A restore file of one table with the given rules (each a line without the -A part's table).</summary>
    public static string Table(string table, params string[] rules) =>
        "*" + table + "\n" + string.Concat(rules.Select(r => r + "\n")) + "COMMIT\n";

    public static ulong MacOf(VirtualHost host, string dev) =>
        ulong.Parse(host.FindLink(dev)!.Mac.Replace(":", "", StringComparison.Ordinal), NumberStyles.HexNumber, CultureInfo.InvariantCulture);

    /// <summary>A packet received on <paramref name="dev"/> from the peer's MAC to the link's own.</summary>
    public static PacketResult Receive(Netfilter nf, byte[] bytes, string dev = "eth0") =>
        nf.Process(new PacketInput { Bytes = bytes, InInterface = dev, SourceMac = PeerMac, DestinationMac = MacOf(nf.Host, dev) });

    public static PacketResult Send(Netfilter nf, byte[] bytes, uint mark = 0, SocketOwner? owner = null) =>
        nf.Process(new PacketInput { Bytes = bytes, Mark = mark, Owner = owner });

    public static string Hex(ReadOnlySpan<byte> b) => Convert.ToHexString(b).ToLowerInvariant();

    /// <summary>Every checksum of the packet (IPv4 header, upper layer) is right.</summary>
    public static void ShouldHaveValidChecksums(this Packet p)
    {
        if (p.Family == IpFamily.V4) p.IpChecksumValid.ShouldBeTrue("IPv4 header checksum");
        p.TransportChecksumValid.ShouldBeTrue("upper-layer checksum");
    }
}
