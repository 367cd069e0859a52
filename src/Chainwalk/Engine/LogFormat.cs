using System.Globalization;
using System.Text;
using Chainwalk.Net;
using Chainwalk.Wire;

namespace Chainwalk.Engine;

/// <summary>
/// The kernel log lines of nf_log_syslog (LOG target and TRACE): <c>IN= OUT= MAC= SRC= DST= LEN= TOS= PREC=
/// TTL= ID= … PROTO= SPT= DPT= …</c>.
/// </summary>
public static class LogFormat
{
    /// <summary>Which optional parts a LOG line has (the target's --log-* options, nf_log's NF_LOG_* flags).</summary>
    [Flags]
    public enum Flags : byte
    {
        None = 0,
        TcpSequence = 1,
        TcpOptions = 2,
        IpOptions = 4,
        Uid = 8,
        MacDecode = 0x20,
    }

    /// <summary>The TRACE line nf_log_trace writes for a traced packet (all flags of NF_LOG_DEFAULT_MASK).</summary>
    public static string TraceLine(PacketContext ctx, string prefix) =>
        Line(ctx, prefix, Flags.TcpSequence | Flags.TcpOptions | Flags.IpOptions | Flags.Uid);

    /// <summary>A packet's log line, <paramref name="prefix"/> first.</summary>
    public static string Line(PacketContext ctx, string prefix, Flags flags)
    {
        var sb = new StringBuilder(prefix);
        Skb skb = ctx.Skb;
        sb.Append("IN=").Append(skb.InDev ?? "").Append(" OUT=").Append(skb.OutDev ?? "").Append(' ');
        if (skb.InDev is not null && skb.SourceMac is ulong smac)
        {
            ulong dmac = skb.DestinationMac ?? 0;
            sb.Append("MAC=").Append(Netfilter.FormatMac(dmac)).Append(':').Append(Netfilter.FormatMac(smac)).Append(':')
                .Append(skb.EtherType >> 8 == 0x08 ? "08:00" : "86:dd").Append(' ');
        }
        Packet p = skb.Packet;
        if (p.Family == IpFamily.V4)
        {
            sb.Append("SRC=").Append(IpNet.FormatAddress(p.Source, p.Family)).Append(" DST=").Append(IpNet.FormatAddress(p.Destination, p.Family)).Append(' ');
            sb.Append(CultureInfo.InvariantCulture, $"LEN={p.TotalLength} TOS=0x{p.Tos & 0x1e:X2} PREC=0x{p.Tos & 0xe0:X2} TTL={p.Ttl} ID={p.FragmentId} ");
            if (p.DontFragment) sb.Append("DF ");
            if (p.MoreFragments) sb.Append("MF ");
            if (p.FragmentOffset != 0) sb.Append(CultureInfo.InvariantCulture, $"FRAG:{p.FragmentOffset / 8} ");
        }
        else
        {
            sb.Append("SRC=").Append(IpNet.FormatAddress(p.Source, p.Family)).Append(" DST=").Append(IpNet.FormatAddress(p.Destination, p.Family)).Append(' ');
            sb.Append(CultureInfo.InvariantCulture, $"LEN={p.TotalLength} TC={p.Tos} HOPLIMIT={p.Ttl} FLOWLBL={p.FlowLabel} ");
        }
        AppendTransport(sb, p, flags);
        if ((flags & Flags.Uid) != 0 && skb.Socket is { } owner)
            sb.Append(CultureInfo.InvariantCulture, $"UID={owner.Uid} GID={owner.Gid} ");
        if (skb.Mark != 0) sb.Append(CultureInfo.InvariantCulture, $"MARK=0x{skb.Mark:x} ");
        return sb.ToString();
    }

    private static void AppendTransport(StringBuilder sb, Packet p, Flags flags)
    {
        switch (p.Protocol)
        {
            case IpProtocol.Tcp:
                sb.Append("PROTO=TCP ");
                if (p.IsNonFirstFragment) return;
                if (!p.HasTransportHeader)
                {
                    sb.Append(CultureInfo.InvariantCulture, $"INCOMPLETE [{p.TransportLength} bytes] ");
                    return;
                }
                sb.Append(CultureInfo.InvariantCulture, $"SPT={p.SourcePort} DPT={p.DestinationPort} ");
                if ((flags & Flags.TcpSequence) != 0) sb.Append(CultureInfo.InvariantCulture, $"SEQ={p.SequenceNumber} ACK={p.AcknowledgmentNumber} ");
                sb.Append(CultureInfo.InvariantCulture, $"WINDOW={p.Window} RES=0x00 ");
                TcpFlags f = p.TcpFlags;
                if ((f & TcpFlags.Cwr) != 0) sb.Append("CWR ");
                if ((f & TcpFlags.Ece) != 0) sb.Append("ECE ");
                if ((f & TcpFlags.Urg) != 0) sb.Append("URG ");
                if ((f & TcpFlags.Ack) != 0) sb.Append("ACK ");
                if ((f & TcpFlags.Psh) != 0) sb.Append("PSH ");
                if ((f & TcpFlags.Rst) != 0) sb.Append("RST ");
                if ((f & TcpFlags.Syn) != 0) sb.Append("SYN ");
                if ((f & TcpFlags.Fin) != 0) sb.Append("FIN ");
                sb.Append(CultureInfo.InvariantCulture, $"URGP={p.UrgentPointer} ");
                break;
            case IpProtocol.Udp:
            case IpProtocol.UdpLite:
                sb.Append(p.Protocol == IpProtocol.Udp ? "PROTO=UDP " : "PROTO=UDPLITE ");
                if (p.IsNonFirstFragment) return;
                if (!p.HasTransportHeader)
                {
                    sb.Append(CultureInfo.InvariantCulture, $"INCOMPLETE [{p.TransportLength} bytes] ");
                    return;
                }
                sb.Append(CultureInfo.InvariantCulture, $"SPT={p.SourcePort} DPT={p.DestinationPort} LEN={p.TransportLength} ");
                break;
            case IpProtocol.Icmp when p.Family == IpFamily.V4:
                sb.Append("PROTO=ICMP ");
                if (p.IsNonFirstFragment || !p.HasTransportHeader) return;
                sb.Append(CultureInfo.InvariantCulture, $"TYPE={p.IcmpType} CODE={p.IcmpCode} ");
                if (p.IcmpType is 0 or 8) sb.Append(CultureInfo.InvariantCulture, $"ID={p.IcmpId} SEQ={p.IcmpSequence} ");
                break;
            case IpProtocol.Icmpv6 when p.Family == IpFamily.V6:
                sb.Append("PROTO=ICMPv6 ");
                if (!p.HasTransportHeader) return;
                sb.Append(CultureInfo.InvariantCulture, $"TYPE={p.IcmpType} CODE={p.IcmpCode} ");
                if (p.IcmpType is 128 or 129) sb.Append(CultureInfo.InvariantCulture, $"ID={p.IcmpId} SEQ={p.IcmpSequence} ");
                break;
            default:
                sb.Append(CultureInfo.InvariantCulture, $"PROTO={p.Protocol} ");
                break;
        }
    }
}
