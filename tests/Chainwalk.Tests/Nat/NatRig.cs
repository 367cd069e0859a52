using System.Globalization;
using Chainwalk.Conntrack;
using Chainwalk.Engine;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Tests.Support;
using Chainwalk.Wire;
using Shouldly;

namespace Chainwalk.Tests.Nat;

/// <summary>
/// The NAT tests' host: the guide's gateway (examples/demos/nat-gateway.demo: eth0 198.51.100.2/24 to the
/// internet, default via 198.51.100.1; eth1 10.0.1.1/24 to the LAN; forwarding on) with any rules, conntrack
/// and NAT loaded as the rules ask, and a one-line rendering of the packets that leave.
/// </summary>
internal sealed class NatRig
{
    public static readonly string[] Gateway =
    [
        "ip link add eth0 type dummy", "ip link add eth1 type dummy", "ip link set eth0 up", "ip link set eth1 up",
        "ip addr add 198.51.100.2/24 dev eth0", "ip addr add 10.0.1.1/24 dev eth1",
        "ip addr add 2001:db8:100::2/64 dev eth0 nodad", "ip addr add fd00:1::1/64 dev eth1 nodad",
        "ip route add default via 198.51.100.1", "ip -6 route add default via 2001:db8:100::1",
        "sysctl -w net.ipv4.ip_forward=1", "sysctl -w net.ipv6.conf.all.forwarding=1",
    ];

    /// <summary>The same gateway with IPv4 only (the established-path tests' host).</summary>
    public static readonly string[] Gateway4 =
    [
        "ip link add eth0 type dummy", "ip link add eth1 type dummy", "ip link set eth0 up", "ip link set eth1 up",
        "ip addr add 198.51.100.2/24 dev eth0", "ip addr add 10.0.1.1/24 dev eth1",
        "ip route add default via 198.51.100.1", "sysctl -w net.ipv4.ip_forward=1",
    ];

    public NatRig(string rules, string rules6 = "", string[]? network = null, params string[] extra)
    {
        Host = EngineHost.Create(rules, rules6, [.. network ?? Gateway, .. extra]);
        Nf = new Netfilter(Host) { RecordTrace = true };
        Ct = ConntrackLoader.Enable(Nf) ?? throw new InvalidOperationException("the rules do not load conntrack");
    }

    public VirtualHost Host { get; }

    public Netfilter Nf { get; }

    public ConntrackHooks Ct { get; }

    public PacketResult In(string iface, byte[] bytes) => Nf.Process(EngineHost.In(iface, bytes));

    public PacketResult Local(byte[] bytes) => Nf.Process(EngineHost.Local(bytes));

    /// <summary>conntrack -L, newest first, one line each.</summary>
    public string Listing => string.Join("\n", Ct.Table.List(Nf.State.Now));

    /// <summary>"eth0 198.51.100.2:40000 > 93.184.216.34:80 S" for each packet that left, checksums verified.</summary>
    public static string Outputs(PacketResult r) => string.Join(" | ", r.Outputs.Select(o => Describe(o.Interface, o.Packet)));

    public static string Describe(string iface, Packet p)
    {
        p.IpChecksumValid.ShouldBeTrue("IP header checksum of " + iface);
        if (p.HasTransportHeader) p.TransportChecksumValid.ShouldBeTrue("transport checksum of " + iface);
        string s = iface + " " + End(p, p.Source, p.SourcePort) + " > " + End(p, p.Destination, p.DestinationPort);
        if (p.Protocol == IpProtocol.Tcp) s += " " + Flags(p.TcpFlags);
        else if (p.IsIcmp) s += " icmp " + p.IcmpType.ToString(CultureInfo.InvariantCulture) + (p.IsIcmpError ? "" : " id " + p.IcmpId.ToString(CultureInfo.InvariantCulture));
        if (p.QuotedPacket is { } q) s += " quoting " + End(q, q.Source, q.SourcePort) + " > " + End(q, q.Destination, q.DestinationPort);
        return s;
    }

    private static string End(Packet p, UInt128 a, ushort port)
    {
        string addr = IpNet.FormatAddress(a, p.Family);
        if (!p.HasPorts) return addr;
        return (p.Family == IpFamily.V6 ? "[" + addr + "]" : addr) + ":" + port.ToString(CultureInfo.InvariantCulture);
    }

    private static string Flags(TcpFlags f)
    {
        string s = "";
        if (f.HasFlag(TcpFlags.Syn)) s += "S";
        if (f.HasFlag(TcpFlags.Fin)) s += "F";
        if (f.HasFlag(TcpFlags.Rst)) s += "R";
        if (f.HasFlag(TcpFlags.Psh)) s += "P";
        if (f.HasFlag(TcpFlags.Ack)) s += "A";
        return s;
    }

    /// <summary>The trace's change lines (NAT translations) and notes, for explanations.</summary>
    public static string[] Changes(PacketResult r) =>
        r.Trace!.OfType<ChangeEvent>().Select(c => c.What).ToArray();

    public static string[] Notes(PacketResult r) =>
        r.Trace!.OfType<NoteEvent>().Select(n => n.Text).ToArray();
}
