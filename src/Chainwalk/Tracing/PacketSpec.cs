using System.Globalization;
using Chainwalk.Engine;
using Chainwalk.Extensions;
using Chainwalk.Extensions.Matches;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Routing;
using Chainwalk.Wire;

namespace Chainwalk.Tracing;

/// <summary>A bad packet description; the message names the field.</summary>
public sealed class PacketSpecException(string message) : Exception(message);

/// <summary>
/// A packet described with iptables' own vocabulary (<c>-p tcp -s A -d B --dport 22 --syn</c>), as the
/// trace verb takes it on the command line or as fields of a batch line; <see cref="Build"/> makes the
/// <see cref="PacketInput"/> (bytes with correct lengths and checksums).
/// </summary>
public sealed class PacketSpec
{
    public string? In { get; set; }
    public bool Local { get; set; }
    public string? Out { get; set; }
    public uint Mark { get; set; }
    public string Protocol { get; set; } = "tcp";
    public string? Source { get; set; }
    public string? Destination { get; set; }
    public ushort? SourcePort { get; set; }
    public ushort? DestinationPort { get; set; }
    public string? TcpFlags { get; set; }
    public uint? Sequence { get; set; }
    public uint? Acknowledgment { get; set; }
    public string? IcmpType { get; set; }
    public int? Length { get; set; }
    public byte? Ttl { get; set; }
    public byte? Tos { get; set; }
    public string? SourceMac { get; set; }
    public string? DestinationMac { get; set; }
    public double? At { get; set; }
    public uint? Uid { get; set; }
    public uint? Gid { get; set; }

    /// <summary>A note the batch line carries (shown by demo); not part of the packet.</summary>
    public string? Comment { get; set; }

    /// <summary>Raw bytes instead of fields (batch "hex").</summary>
    public byte[]? Bytes { get; set; }

    public PacketInput Build(VirtualHost host)
    {
        if (Local && In is not null) throw new PacketSpecException("a packet either arrives on an interface (-i) or is sent locally (--local), not both");
        if (!Local && In is null) throw new PacketSpecException("say where the packet comes from: -i IFACE (arrives on an interface) or --local (sent by a local process)");
        if (In is not null && !host.Links.Exists(l => l.Name == In)) throw new PacketSpecException($"no such interface on the host: {In} (see `ip link`)");
        if (Out is not null && !host.Links.Exists(l => l.Name == Out)) throw new PacketSpecException($"no such interface on the host: {Out}");
        byte[] bytes = Bytes ?? BuildBytes(host);
        if (PacketInput.Check(bytes) is { } err) throw new PacketSpecException("the bytes are not an IP packet: " + err);
        ulong? smac = SourceMac is null ? null : ParseMac(SourceMac, "--mac-source");
        ulong? dmac = DestinationMac is null ? null : ParseMac(DestinationMac, "eth dst");
        if (In is not null)
        {
            smac ??= 0x02_00_00_00_00_01UL;
            dmac ??= ParseMac(host.Links.Find(l => l.Name == In)!.Mac, "interface MAC");
        }
        return new PacketInput
        {
            Bytes = bytes,
            InInterface = In,
            OutInterface = Local ? Out : null,
            Mark = Mark,
            Owner = Local ? new SocketOwner(Uid ?? 0, Gid ?? Uid ?? 0) : null,
            SourceMac = In is null ? null : smac,
            DestinationMac = In is null ? null : dmac,
            At = At,
        };
    }

    private byte[] BuildBytes(VirtualHost host)
    {
        if (Destination is null) throw new PacketSpecException("-d DST is required");
        IpFamily family = Destination.Contains(':') ? IpFamily.V6 : IpFamily.V4;
        UInt128 dst = ParseAddress(Destination, family, "-d");
        UInt128 src;
        if (Source is not null)
        {
            src = ParseAddress(Source, family, "-s");
        }
        else if (Local)
        {
            RouteResult r = RouteLookup.Output(host, new RouteQuery(family, dst) { OutputInterface = Out, Mark = Mark });
            src = r.PreferredSource ?? throw new PacketSpecException($"no source address for {Destination}: {(r.Ok ? "no address fits" : r.ErrorMessage)}; give -s");
        }
        else
        {
            throw new PacketSpecException("-s SRC is required for a packet arriving on an interface");
        }
        PacketBuilder b = family == IpFamily.V4 ? PacketBuilder.Ipv4((uint)src, (uint)dst) : PacketBuilder.Ipv6(src, dst);
        b.Ttl(Ttl ?? 64);
        if (Tos is byte tos) b.Tos(tos);
        if (family == IpFamily.V4) b.DontFragment(Protocol is "tcp" or "6");
        string proto = Protocol.ToLowerInvariant();
        int headerLength;
        switch (proto)
        {
            case "tcp":
            case "6":
                b.Tcp(SourcePort ?? 40000, DestinationPort ?? 80, ParseTcpFlags(TcpFlags ?? "SYN"), seq: Sequence ?? 1000, ack: Acknowledgment ?? 0);
                headerLength = 20;
                break;
            case "udp":
            case "17":
                b.Udp(SourcePort ?? 40000, DestinationPort ?? 53);
                headerLength = 8;
                break;
            case "sctp":
            case "132":
                b.SctpInit(SourcePort ?? 40000, DestinationPort ?? 80, 0x1234);
                headerLength = 32;
                break;
            case "icmp" or "1" when family == IpFamily.V4:
            case "icmpv6" or "ipv6-icmp" or "icmp6" or "58" when family == IpFamily.V6:
                {
                    (byte type, byte code) = ParseIcmpType(IcmpType, family);
                    if (type is 0 or 8 or 128 or 129) b.IcmpEcho(1, 1, reply: type is 0 or 129);
                    else b.Icmp(type, code);
                    headerLength = 8;
                    break;
                }
            default:
                {
                    ushort number;
                    try
                    {
                        number = Syntax.Protocols.Parse(proto, NameDb.System);
                    }
                    catch (Syntax.XtablesException)
                    {
                        throw new PacketSpecException($"unknown protocol \"{Protocol}\"");
                    }
                    if (number is 0 or > 255) throw new PacketSpecException($"cannot build a packet of protocol \"{Protocol}\"");
                    b.Protocol((byte)number);
                    headerLength = 0;
                    break;
                }
        }
        if (Length is int len)
        {
            int ipHeader = family == IpFamily.V4 ? 20 : 40;
            int payload = len - ipHeader - headerLength;
            if (payload < 0) throw new PacketSpecException($"--len {len} is shorter than the headers ({ipHeader + headerLength} bytes)");
            if (len > 65535) throw new PacketSpecException($"--len {len} is more than 65535");
            b.PayloadLength(payload);
        }
        return b.Build();
    }

    private static UInt128 ParseAddress(string text, IpFamily family, string option)
    {
        if (!IpNet.TryParseStrict(text, family, out UInt128 a))
            throw new PacketSpecException($"{option} {text}: not an {(family == IpFamily.V4 ? "IPv4" : "IPv6")} address (both addresses must be of one family)");
        return a;
    }

    public static ulong ParseMac(string text, string what) =>
        EthernetFrame.TryParseMac(text, out ulong mac) ? mac : throw new PacketSpecException($"{what} {text}: not a MAC address (xx:xx:xx:xx:xx:xx)");

    /// <summary>TCP flags as iptables names them (SYN,ACK …; NONE; ALL).</summary>
    public static Wire.TcpFlags ParseTcpFlags(string text)
    {
        Wire.TcpFlags f = 0;
        foreach (string name in text.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            f |= name.ToUpperInvariant() switch
            {
                "FIN" => Wire.TcpFlags.Fin,
                "SYN" => Wire.TcpFlags.Syn,
                "RST" => Wire.TcpFlags.Rst,
                "PSH" => Wire.TcpFlags.Psh,
                "ACK" => Wire.TcpFlags.Ack,
                "URG" => Wire.TcpFlags.Urg,
                "ECE" => Wire.TcpFlags.Ece,
                "CWR" => Wire.TcpFlags.Cwr,
                "ALL" => Wire.TcpFlags.Fin | Wire.TcpFlags.Syn | Wire.TcpFlags.Rst | Wire.TcpFlags.Psh | Wire.TcpFlags.Ack | Wire.TcpFlags.Urg,
                "NONE" => 0,
                _ => throw new PacketSpecException($"--tcp-flags: unknown flag \"{name}\" (FIN SYN RST PSH ACK URG ECE CWR ALL NONE)"),
            };
        }
        return f;
    }

    /// <summary>An ICMP type as iptables' --icmp-type takes it: a name (echo-request) or TYPE[/CODE].</summary>
    public static (byte Type, byte Code) ParseIcmpType(string? text, IpFamily family)
    {
        if (text is null) return family == IpFamily.V4 ? ((byte)8, (byte)0) : ((byte)128, (byte)0);
        XtParse.IcmpName[] names = family == IpFamily.V4 ? IcmpMatch.Codes : Icmp6Match.Codes;
        foreach (XtParse.IcmpName n in names)
        {
            if (n.Name == text && n.Type != 0xff) return (n.Type, n.CodeMin == 0 && n.CodeMax == 0xff ? (byte)0 : n.CodeMin);
        }
        string[] parts = text.Split('/');
        if (parts.Length is 1 or 2 && byte.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out byte type))
        {
            byte code = 0;
            if (parts.Length == 2 && !byte.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out code))
                throw new PacketSpecException($"--icmp-type {text}: bad code");
            return (type, code);
        }
        throw new PacketSpecException($"--icmp-type {text}: unknown ICMP type (a name such as echo-request, or TYPE[/CODE])");
    }
}
