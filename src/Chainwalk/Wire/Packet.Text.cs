using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Chainwalk.Net;

namespace Chainwalk.Wire;

// The one-line text of a packet, in the words of `tcpdump -n` (print-tcp.c, print-udp.c, print-icmp.c,
// print-icmp6.c, print-sctp.c), so LOG, TRACE and explain lines read like a capture.
public sealed partial class Packet
{
    /// <summary>
    /// One line as <c>tcpdump -n</c> prints the packet, e.g.
    /// <c>IP 10.0.0.1.1234 &gt; 10.0.0.2.80: Flags [S], seq 1, win 64240, options [mss 1460], length 0</c>.
    /// </summary>
    public override string ToString()
    {
        var sb = new StringBuilder(96);
        sb.Append(Family == IpFamily.V4 ? "IP " : "IP6 ");
        string src = IpNet.FormatAddress(Source, Family), dst = IpNet.FormatAddress(Destination, Family);
        // tcpdump puts the ports after the addresses only when the transport header follows the IP header directly.
        bool chain = Family == IpFamily.V6 && TransportOffset > Ipv6Header.Length;
        if (HasPorts && !chain && !IsNonFirstFragment)
            sb.Append(CultureInfo.InvariantCulture, $"{src}.{SourcePort} > {dst}.{DestinationPort}: ");
        else
            sb.Append(CultureInfo.InvariantCulture, $"{src} > {dst}: ");

        if (chain && !AppendIpv6Chain(sb)) return sb.ToString().TrimEnd();
        if (IsNonFirstFragment || (IsQuoted && !HasTransportHeader && !HasPorts))
        {
            sb.Append(CultureInfo.InvariantCulture, $"ip-proto-{Protocol}");
            return sb.ToString();
        }
        if (chain && HasPorts) sb.Append(CultureInfo.InvariantCulture, $"{SourcePort} > {DestinationPort}: ");
        switch (Protocol)
        {
            case IpProtocol.Tcp: AppendTcp(sb); break;
            case IpProtocol.Udp: AppendUdp(sb); break;
            case IpProtocol.Icmp when Family == IpFamily.V4: AppendIcmp(sb); break;
            case IpProtocol.Icmpv6 when Family == IpFamily.V6: AppendIcmpv6(sb); break;
            case IpProtocol.Sctp: AppendSctp(sb); break;
            default: sb.Append(CultureInfo.InvariantCulture, $"ip-proto-{Protocol} {TransportLength}"); break;
        }
        return sb.ToString();
    }

    /// <summary>
    /// The IPv6 extension headers as tcpdump names them (print-ip6.c and friends): "HBH", "DSTOPT", "RT6 (...)",
    /// "AH(...):", "frag (offset|length)". Returns false after a later fragment, where tcpdump stops.
    /// </summary>
    private bool AppendIpv6Chain(StringBuilder sb)
    {
        var walk = new Ipv6ExtensionEnumerator(Bytes);
        while (walk.MoveNext())
        {
            Ipv6ExtensionHeader h = walk.Current;
            ReadOnlySpan<byte> x = Bytes.AsSpan(h.Offset, h.Length);
            switch (h.Type)
            {
                case IpProtocol.HopByHop: sb.Append("HBH "); break;
                case IpProtocol.DestinationOptions: sb.Append("DSTOPT "); break;
                case IpProtocol.Routing: sb.Append(CultureInfo.InvariantCulture, $"RT6 (len={x[1]}, type={x[2]}, segleft={x[3]}) "); break;
                case IpProtocol.Ah:
                    sb.Append(CultureInfo.InvariantCulture, $"AH(spi=0x{BinaryPrimitives.ReadUInt32BigEndian(x[4..]):x8},seq=0x{BinaryPrimitives.ReadUInt32BigEndian(x[8..]):x}): ");
                    break;
                case IpProtocol.Fragment:
                    int offset = BinaryPrimitives.ReadUInt16BigEndian(x[2..]) & 0xfff8;
                    int length = Math.Min(TotalLength, Bytes.Length) - (h.Offset + h.Length);
                    sb.Append(CultureInfo.InvariantCulture, $"frag ({offset}|{length})");
                    if (offset != 0) return false;
                    sb.Append(' ');
                    break;
            }
        }
        return true;
    }

    /// <summary>TCP flags as tcpdump letters in its order (F S R P . U E W), "none" when no bit is set.</summary>
    public static string FlagLetters(TcpFlags flags)
    {
        if (flags == TcpFlags.None) return "none";
        var sb = new StringBuilder(8);
        if (flags.HasFlag(TcpFlags.Fin)) sb.Append('F');
        if (flags.HasFlag(TcpFlags.Syn)) sb.Append('S');
        if (flags.HasFlag(TcpFlags.Rst)) sb.Append('R');
        if (flags.HasFlag(TcpFlags.Psh)) sb.Append('P');
        if (flags.HasFlag(TcpFlags.Ack)) sb.Append('.');
        if (flags.HasFlag(TcpFlags.Urg)) sb.Append('U');
        if (flags.HasFlag(TcpFlags.Ece)) sb.Append('E');
        if (flags.HasFlag(TcpFlags.Cwr)) sb.Append('W');
        return sb.ToString();
    }

    private void AppendTcp(StringBuilder sb)
    {
        if (!HasTransportHeader) { AppendBadTcp(sb); return; }
        int length = Math.Max(0, Math.Min(TotalLength, Bytes.Length) - TransportOffset - TransportHeaderLength);
        sb.Append("Flags [").Append(FlagLetters(TcpFlags)).Append(']');
        if (length > 0 || (TcpFlags & (TcpFlags.Syn | TcpFlags.Fin | TcpFlags.Rst)) != 0)
        {
            sb.Append(CultureInfo.InvariantCulture, $", seq {SequenceNumber}");
            if (length > 0) sb.Append(CultureInfo.InvariantCulture, $":{unchecked(SequenceNumber + (uint)length)}");
        }
        if (TcpFlags.HasFlag(TcpFlags.Ack)) sb.Append(CultureInfo.InvariantCulture, $", ack {AcknowledgmentNumber}");
        sb.Append(CultureInfo.InvariantCulture, $", win {Window}");
        if (TcpFlags.HasFlag(TcpFlags.Urg)) sb.Append(CultureInfo.InvariantCulture, $", urg {UrgentPointer}");
        if (TransportHeaderLength > TcpHeader.MinLength)
        {
            sb.Append(", options [");
            AppendTcpOptions(sb, Bytes.AsSpan(TransportOffset + TcpHeader.MinLength, TransportHeaderLength - TcpHeader.MinLength));
            sb.Append(']');
        }
        sb.Append(CultureInfo.InvariantCulture, $", length {length}");
    }

    /// <summary>A TCP header that the IP length cuts short or whose data offset is wrong, in tcpdump's words.</summary>
    private void AppendBadTcp(StringBuilder sb)
    {
        int available = Math.Min(TotalLength, Bytes.Length) - TransportOffset;
        if (available < TcpHeader.MinLength) { sb.Append("[|tcp]"); return; }
        ReadOnlySpan<byte> l4 = Bytes.AsSpan(TransportOffset);
        int hlen = (l4[12] >> 4) * 4;
        sb.Append("Flags [").Append(FlagLetters((TcpFlags)l4[13])).Append("] ");
        sb.Append(hlen < TcpHeader.MinLength
            ? Inv($"[bad hdr length {hlen} - too short, < {TcpHeader.MinLength}]")
            : Inv($"[bad hdr length {hlen} - too long, > {available}]"));
    }

    private static void AppendTcpOptions(StringBuilder sb, ReadOnlySpan<byte> options)
    {
        var e = new TcpOptionEnumerator(options);
        bool first = true;
        while (e.MoveNext())
        {
            TcpOption o = e.Current;
            if (!first) sb.Append(',');
            first = false;
            ReadOnlySpan<byte> d = o.Data;
            switch (o.Kind)
            {
                case TcpOptionKind.End: sb.Append("eol"); break;
                case TcpOptionKind.Nop: sb.Append("nop"); break;
                case TcpOptionKind.Mss when d.Length == 2: sb.Append(CultureInfo.InvariantCulture, $"mss {BinaryPrimitives.ReadUInt16BigEndian(d)}"); break;
                case TcpOptionKind.WindowScale when d.Length == 1: sb.Append(CultureInfo.InvariantCulture, $"wscale {d[0]}"); break;
                case TcpOptionKind.SackPermitted when d.Length == 0: sb.Append("sackOK"); break;
                case TcpOptionKind.Sack when d.Length % 8 == 0:
                    sb.Append(CultureInfo.InvariantCulture, $"sack {d.Length / 8}");
                    for (int i = 0; i + 8 <= d.Length; i += 8)
                        sb.Append(CultureInfo.InvariantCulture, $" {{{BinaryPrimitives.ReadUInt32BigEndian(d[i..])}:{BinaryPrimitives.ReadUInt32BigEndian(d[(i + 4)..])}}}");
                    break;
                case TcpOptionKind.Timestamp when d.Length == 8:
                    sb.Append(CultureInfo.InvariantCulture, $"TS val {BinaryPrimitives.ReadUInt32BigEndian(d)} ecr {BinaryPrimitives.ReadUInt32BigEndian(d[4..])}");
                    break;
                default: sb.Append(CultureInfo.InvariantCulture, $"unknown-{o.Kind}"); break;
            }
        }
        if (e.Malformed) sb.Append(first ? "bad opt" : ",bad opt");
    }

    private void AppendUdp(StringBuilder sb)
    {
        if (!HasTransportHeader)
        {
            int available = Math.Min(TotalLength, Bytes.Length) - TransportOffset;
            sb.Append(HasPorts ? Inv($"truncated-udp {available}") : "[|udp]");
            return;
        }
        int length = BinaryPrimitives.ReadUInt16BigEndian(Bytes.AsSpan(TransportOffset + 4)) - UdpHeader.Length;
        sb.Append(CultureInfo.InvariantCulture, $"UDP, length {Math.Max(0, length)}");
    }

    private void AppendIcmp(StringBuilder sb)
    {
        if (!HasTransportHeader) { sb.Append("[|icmp]"); return; }
        sb.Append("ICMP ");
        Packet? q = QuotedPacket;
        string qdst = q is null ? "?" : IpNet.FormatAddress(q.Destination, q.Family);
        string text = (IcmpType, IcmpCode) switch
        {
            (Wire.IcmpType.EchoRequest, _) => Inv($"echo request, id {IcmpId}, seq {IcmpSequence}"),
            (Wire.IcmpType.EchoReply, _) => Inv($"echo reply, id {IcmpId}, seq {IcmpSequence}"),
            (Wire.IcmpType.DestinationUnreachable, 0) => $"net {qdst} unreachable",
            (Wire.IcmpType.DestinationUnreachable, 1) => $"host {qdst} unreachable",
            (Wire.IcmpType.DestinationUnreachable, 2) => Inv($"{qdst} protocol {q?.Protocol} unreachable"),
            (Wire.IcmpType.DestinationUnreachable, 3) => PortUnreachable(q, qdst),
            (Wire.IcmpType.DestinationUnreachable, 4) => Inv($"{qdst} unreachable - need to frag (mtu {IcmpSequence})"),
            (Wire.IcmpType.DestinationUnreachable, 9) => $"net {qdst} unreachable - admin prohibited",
            (Wire.IcmpType.DestinationUnreachable, 10) => $"host {qdst} unreachable - admin prohibited",
            (Wire.IcmpType.DestinationUnreachable, 13) => $"host {qdst} unreachable - admin prohibited filter",
            (Wire.IcmpType.DestinationUnreachable, _) => Inv($"{qdst} unreachable - #{IcmpCode}"),
            (Wire.IcmpType.TimeExceeded, 0) => "time exceeded in-transit",
            (Wire.IcmpType.TimeExceeded, 1) => "ip reassembly time exceeded",
            (Wire.IcmpType.ParameterProblem, _) => Inv($"parameter problem - octet {IcmpId >> 8}"),
            (Wire.IcmpType.Redirect, 0) => $"redirect {qdst} to net {Gateway()}",
            (Wire.IcmpType.Redirect, 1) => $"redirect {qdst} to host {Gateway()}",
            (Wire.IcmpType.Redirect, 2) => $"redirect-tos {qdst} to net {Gateway()}",
            (Wire.IcmpType.Redirect, 3) => $"redirect-tos {qdst} to host {Gateway()}",
            (Wire.IcmpType.Redirect, _) => Inv($"redirect-#{IcmpCode} {qdst} to {Gateway()}"),
            (Wire.IcmpType.SourceQuench, _) => "source quench",
            (Wire.IcmpType.TimestampRequest, _) => Inv($"time stamp query id {IcmpId} seq {IcmpSequence}"),
            (Wire.IcmpType.TimestampReply, _) => Inv($"time stamp reply id {IcmpId} seq {IcmpSequence}"),
            _ => Inv($"type-#{IcmpType}"),
        };
        sb.Append(text).Append(CultureInfo.InvariantCulture, $", length {TransportLength}");
    }

    private string Gateway() => IpNet.FormatAddress(BinaryPrimitives.ReadUInt32BigEndian(Bytes.AsSpan(TransportOffset + 4)), IpFamily.V4);

    private static string PortUnreachable(Packet? q, string qdst)
    {
        if (q is null || !q.HasPorts) return $"{qdst} port unreachable";
        string proto = q.Protocol switch { IpProtocol.Tcp => "tcp", IpProtocol.Udp => "udp", IpProtocol.Sctp => "sctp", _ => Inv($"ip-proto-{q.Protocol}") };
        return Inv($"{qdst} {proto} port {q.DestinationPort} unreachable");
    }

    private void AppendIcmpv6(StringBuilder sb)
    {
        if (!HasTransportHeader) { sb.Append("[|icmp6]"); return; }
        Packet? q = QuotedPacket;
        string qdst = q is null ? "?" : IpNet.FormatAddress(q.Destination, q.Family);
        uint rest = BinaryPrimitives.ReadUInt32BigEndian(Bytes.AsSpan(TransportOffset + 4));
        string text = (IcmpType, IcmpCode) switch
        {
            (Icmpv6Type.EchoRequest, _) => Inv($"echo request, id {IcmpId}, seq {IcmpSequence}"),
            (Icmpv6Type.EchoReply, _) => Inv($"echo reply, id {IcmpId}, seq {IcmpSequence}"),
            (Icmpv6Type.DestinationUnreachable, 0) => $"destination unreachable, unreachable route {qdst}",
            (Icmpv6Type.DestinationUnreachable, 1) => $"destination unreachable, unreachable prohibited {qdst}",
            (Icmpv6Type.DestinationUnreachable, 3) => $"destination unreachable, unreachable address {qdst}",
            (Icmpv6Type.DestinationUnreachable, 4) => PortUnreachable6(q, qdst),
            (Icmpv6Type.DestinationUnreachable, 5) => $"destination unreachable, failed source policy {qdst}",
            (Icmpv6Type.DestinationUnreachable, 6) => $"destination unreachable, reject route {qdst}",
            (Icmpv6Type.DestinationUnreachable, _) => Inv($"destination unreachable, unknown code {IcmpCode}"),
            (Icmpv6Type.PacketTooBig, _) => Inv($"packet too big, mtu {rest}"),
            (Icmpv6Type.TimeExceeded, 0) => $"time exceeded in-transit for {qdst}",
            (Icmpv6Type.TimeExceeded, 1) => "ip6 reassembly time exceeded",
            (Icmpv6Type.ParameterProblem, 0) => Inv($"parameter problem, erroneous - octet {rest}"),
            (Icmpv6Type.ParameterProblem, 1) => Inv($"parameter problem, next header - octet {rest}"),
            (Icmpv6Type.ParameterProblem, 2) => Inv($"parameter problem, option - octet {rest}"),
            (Icmpv6Type.ParameterProblem, _) => Inv($"parameter problem, code-#{IcmpCode}"),
            (Icmpv6Type.RouterSolicitation, _) => "router solicitation",
            (Icmpv6Type.RouterAdvertisement, _) => "router advertisement",
            (Icmpv6Type.NeighborSolicitation, _) => NdTarget("neighbor solicitation, who has"),
            (Icmpv6Type.NeighborAdvertisement, _) => NdTarget("neighbor advertisement, tgt is"),
            (Icmpv6Type.Redirect, _) => "redirect",
            (Icmpv6Type.MldQuery, _) => "multicast listener query",
            (Icmpv6Type.MldReport, _) => "multicast listener report",
            (Icmpv6Type.MldDone, _) => "multicast listener done",
            (Icmpv6Type.Mldv2Report, _) => "multicast listener report v2",
            _ => Inv($"type-#{IcmpType}"),
        };
        sb.Append("ICMP6, ").Append(text).Append(CultureInfo.InvariantCulture, $", length {TransportLength}");
    }

    private string NdTarget(string words)
    {
        ReadOnlySpan<byte> l4 = Bytes.AsSpan(TransportOffset);
        if (l4.Length < 24) return words;
        return words + " " + IpNet.FormatV6(BinaryPrimitives.ReadUInt128BigEndian(l4[8..]));
    }

    private static string PortUnreachable6(Packet? q, string qdst)
    {
        if (q is null || !q.HasPorts) return $"destination unreachable, unreachable port {qdst}";
        string proto = q.Protocol switch { IpProtocol.Tcp => "tcp", IpProtocol.Udp => "udp", IpProtocol.Sctp => "sctp", _ => Inv($"ip-proto-{q.Protocol}") };
        return Inv($"destination unreachable, unreachable port, {qdst} {proto} port {q.DestinationPort}");
    }

    private void AppendSctp(StringBuilder sb)
    {
        if (!HasTransportHeader) { sb.Append("[|sctp]"); return; }
        ReadOnlySpan<byte> l4 = Bytes.AsSpan(TransportOffset, Math.Min(TransportLength, Bytes.Length - TransportOffset));
        var chunks = new SctpChunkEnumerator(l4);
        var parts = new List<string>();
        while (chunks.MoveNext())
        {
            SctpChunk c = chunks.Current;
            string name = "[" + (SctpChunkType.Name(c.Type) ?? Inv($"Unknown chunk type: {c.Type}")) + "]";
            if (c.Type is SctpChunkType.Init or SctpChunkType.InitAck && c.Length >= 20)
            {
                ReadOnlySpan<byte> v = l4[(c.Offset + 4)..];
                name += Inv($" [init tag: {BinaryPrimitives.ReadUInt32BigEndian(v)}] [rwnd: {BinaryPrimitives.ReadUInt32BigEndian(v[4..])}] [OS: {BinaryPrimitives.ReadUInt16BigEndian(v[8..])}] [MIS: {BinaryPrimitives.ReadUInt16BigEndian(v[10..])}] [init TSN: {BinaryPrimitives.ReadUInt32BigEndian(v[12..])}]");
            }
            parts.Add(name);
        }
        sb.Append(CultureInfo.InvariantCulture, $"sctp ({parts.Count})");
        if (parts.Count == 1) sb.Append(' ').Append(parts[0]);
        else for (int i = 0; i < parts.Count; i++) sb.Append(CultureInfo.InvariantCulture, $" {i + 1}) {parts[i]}");
        if (chunks.Malformed) sb.Append(" [|sctp]");
    }

    private static string Inv(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
}
