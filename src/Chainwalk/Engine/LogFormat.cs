using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using Chainwalk.Net;
using Chainwalk.Wire;

namespace Chainwalk.Engine;

/// <summary>
/// The kernel log lines of net/netfilter/nf_log_syslog.c (LOG target and the legacy TRACE line): the
/// common part (nf_log_dump_packet_common), the MAC header (dump_mac_header), then dump_ipv4_packet or
/// dump_ipv6_packet read from the packet's bytes, quoted packets of ICMP errors included.
/// </summary>
/// <remarks>
/// The line is the message text exactly as printk receives it: <c>PREFIX</c> followed by
/// <c>IN=… OUT=… [PHYSIN=…] [MAC=…] SRC=… …</c>, ending with a space, without the KERN_SOH level byte
/// (the --log-level is the syslog priority, not part of the text) and without what syslog adds
/// (<c>kernel: [  12.345678] </c>).
/// </remarks>
public static class LogFormat
{
    /// <summary>KERN_WARNING: the level of TRACE lines and of a LOG rule without --log-level (nf_log_syslog.c).</summary>
    public const byte WarningLevel = 4;

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

    /// <summary>
    /// The TRACE line nf_log_trace writes for a traced packet: trace_loginfo in ip_tables.c / ip6_tables.c
    /// has logflags NF_LOG_DEFAULT_MASK (TCPSEQ|TCPOPT|IPOPT|UID; no MACDECODE) at level 4.
    /// </summary>
    public static string TraceLine(PacketContext ctx, string prefix) =>
        Line(ctx, prefix, Flags.TcpSequence | Flags.TcpOptions | Flags.IpOptions | Flags.Uid);

    /// <summary>A packet's log line, <paramref name="prefix"/> first.</summary>
    public static string Line(PacketContext ctx, string prefix, Flags flags)
    {
        var sb = new StringBuilder(160);
        Skb skb = ctx.Skb;
        sb.Append(prefix).Append("IN=").Append(skb.InDev ?? "").Append(" OUT=").Append(skb.OutDev ?? "").Append(' ');
        // nf_log_dump_packet_common: bridge ports when they differ from the IP-level devices.
        if (skb.PhysInDev is { } pin && pin != skb.InDev) sb.Append("PHYSIN=").Append(pin).Append(' ');
        if (skb.PhysOutDev is { } pout && pout != skb.OutDev) sb.Append("PHYSOUT=").Append(pout).Append(' ');
        if (skb.InDev is not null) AppendMac(sb, ctx, flags);
        byte[] b = skb.Packet.Bytes;
        int len = Math.Min(b.Length, skb.Packet.TotalLength);
        ReadOnlySpan<byte> data = b.AsSpan(0, len);
        if (skb.Family == IpFamily.V4) DumpIpv4(sb, data, 0, flags, skb);
        else DumpIpv6(sb, data, 0, flags, skb, recurse: true);
        return sb.ToString();
    }

    /// <summary>
    /// dump_mac_header: with --log-macdecode on an Ethernet device <c>MACSRC= MACDST= MACPROTO=</c>; otherwise
    /// <c>MAC=</c> and the hard header as hex bytes (destination, source, type; loopback's is all zero but the type).
    /// A received packet whose source MAC was not given is shown with 00:00:00:00:00:00 as its source.
    /// </summary>
    private static void AppendMac(StringBuilder sb, PacketContext ctx, Flags flags)
    {
        Skb skb = ctx.Skb;
        Host.Link? link = ctx.Host.FindLink(skb.InDev!);
        bool loopback = link?.Kind == "loopback";
        ulong dst = skb.DestinationMac ?? (!loopback && EthernetFrame.TryParseMac(link?.Mac, out ulong own) ? own : 0);
        ulong src = skb.SourceMac ?? 0;
        if ((flags & Flags.MacDecode) != 0 && !loopback)
        {
            sb.Append("MACSRC=").Append(EthernetFrame.FormatMac(src)).Append(" MACDST=").Append(EthernetFrame.FormatMac(dst))
                .Append(CultureInfo.InvariantCulture, $" MACPROTO={skb.EtherType:x4} ");
            return;
        }
        sb.Append("MAC=").Append(EthernetFrame.FormatMac(dst)).Append(':').Append(EthernetFrame.FormatMac(src)).Append(':')
            .Append(skb.Family == IpFamily.V4 ? "08:00" : "86:dd").Append(' ');
    }

    private static void Hex(StringBuilder sb, ReadOnlySpan<byte> bytes)
    {
        foreach (byte x in bytes) sb.Append(CultureInfo.InvariantCulture, $"{x:X2}");
    }

    private static string Addr4(ReadOnlySpan<byte> b) =>
        string.Create(CultureInfo.InvariantCulture, $"{b[0]}.{b[1]}.{b[2]}.{b[3]}");

    private static string Addr6(ReadOnlySpan<byte> b) =>
        IpNet.FormatAddress(BinaryPrimitives.ReadUInt128BigEndian(b), IpFamily.V6);

    /// <summary>dump_ipv4_packet: <paramref name="iphoff"/> is 0 for the packet, the quote's offset inside an ICMP error.</summary>
    private static void DumpIpv4(StringBuilder sb, ReadOnlySpan<byte> skb, int iphoff, Flags flags, Skb owner)
    {
        if (skb.Length - iphoff < 20)
        {
            sb.Append("TRUNCATED");
            return;
        }
        ReadOnlySpan<byte> ih = skb[iphoff..];
        int ihl = (ih[0] & 0x0f) * 4;
        ushort fragWord = BinaryPrimitives.ReadUInt16BigEndian(ih[6..]);
        int fragoff = fragWord & 0x1fff;
        sb.Append("SRC=").Append(Addr4(ih[12..])).Append(" DST=").Append(Addr4(ih[16..])).Append(' ');
        sb.Append(CultureInfo.InvariantCulture,
            $"LEN={BinaryPrimitives.ReadUInt16BigEndian(ih[2..])} TOS=0x{ih[1] & 0x1e:X2} PREC=0x{ih[1] & 0xe0:X2} TTL={ih[8]} ID={BinaryPrimitives.ReadUInt16BigEndian(ih[4..])} ");
        if ((fragWord & 0x8000) != 0) sb.Append("CE ");
        if ((fragWord & 0x4000) != 0) sb.Append("DF ");
        if ((fragWord & 0x2000) != 0) sb.Append("MF ");
        if (fragoff != 0) sb.Append(CultureInfo.InvariantCulture, $"FRAG:{fragoff} ");

        if ((flags & Flags.IpOptions) != 0 && ihl > 20)
        {
            if (skb.Length - iphoff < ihl)
            {
                sb.Append("TRUNCATED");
                return;
            }
            sb.Append("OPT (");
            Hex(sb, ih[20..ihl]);
            sb.Append(") ");
        }

        int l4 = iphoff + ihl;
        byte proto = ih[9];
        switch (proto)
        {
            case IpProtocol.Tcp:
                if (DumpTcp(sb, skb, fragoff != 0, l4, flags)) return;
                break;
            case IpProtocol.Udp:
            case IpProtocol.UdpLite:
                if (DumpUdp(sb, skb, proto, fragoff != 0, l4)) return;
                break;
            case IpProtocol.Icmp:
                {
                    sb.Append("PROTO=ICMP ");
                    if (fragoff != 0) break;
                    if (skb.Length - l4 < 8)
                    {
                        sb.Append(CultureInfo.InvariantCulture, $"INCOMPLETE [{skb.Length - l4} bytes] ");
                        break;
                    }
                    ReadOnlySpan<byte> ic = skb[l4..];
                    byte type = ic[0];
                    sb.Append(CultureInfo.InvariantCulture, $"TYPE={type} CODE={ic[1]} ");
                    int required = RequiredIcmpLength(type);
                    if (required != 0 && skb.Length - l4 < required)
                    {
                        sb.Append(CultureInfo.InvariantCulture, $"INCOMPLETE [{skb.Length - l4} bytes] ");
                        break;
                    }
                    switch (type)
                    {
                        case 0:
                        case 8:
                            sb.Append(CultureInfo.InvariantCulture,
                                $"ID={BinaryPrimitives.ReadUInt16BigEndian(ic[4..])} SEQ={BinaryPrimitives.ReadUInt16BigEndian(ic[6..])} ");
                            break;
                        case 12:
                            // No quoted packet for a parameter problem (nf_log_syslog.c breaks there).
                            sb.Append(CultureInfo.InvariantCulture, $"PARAMETER={ic[4]} ");
                            break;
                        case 5:
                            sb.Append("GATEWAY=").Append(Addr4(ic[4..])).Append(' ');
                            QuoteIpv4(sb, skb, iphoff, l4, flags, owner, type, ic);
                            break;
                        case 3:
                        case 4:
                        case 11:
                            QuoteIpv4(sb, skb, iphoff, l4, flags, owner, type, ic);
                            break;
                    }
                    break;
                }
            case IpProtocol.Ah:
            case IpProtocol.Esp:
                {
                    bool ah = proto == IpProtocol.Ah;
                    // AH: a later fragment shows nothing at all; ESP shows its protocol first.
                    if (ah && fragoff != 0) break;
                    sb.Append(ah ? "PROTO=AH " : "PROTO=ESP ");
                    if (fragoff != 0) break;
                    int need = ah ? 12 : 8;
                    if (skb.Length - l4 < need)
                    {
                        sb.Append(CultureInfo.InvariantCulture, $"INCOMPLETE [{skb.Length - l4} bytes] ");
                        break;
                    }
                    sb.Append(CultureInfo.InvariantCulture, $"SPI=0x{BinaryPrimitives.ReadUInt32BigEndian(skb[(l4 + (ah ? 4 : 0))..]):x} ");
                    break;
                }
            default:
                sb.Append(CultureInfo.InvariantCulture, $"PROTO={proto} ");
                break;
        }
        if (iphoff != 0) return;
        if ((flags & Flags.Uid) != 0 && owner.Socket is { } s) sb.Append(CultureInfo.InvariantCulture, $"UID={s.Uid} GID={s.Gid} ");
        if (owner.Mark != 0) sb.Append(CultureInfo.InvariantCulture, $"MARK=0x{owner.Mark:x} ");
    }

    /// <summary>The quoted packet of an ICMP error, only at the outer level; then MTU= for "fragmentation needed".</summary>
    private static void QuoteIpv4(StringBuilder sb, ReadOnlySpan<byte> skb, int iphoff, int l4, Flags flags, Skb owner, byte type, ReadOnlySpan<byte> ic)
    {
        if (iphoff == 0)
        {
            sb.Append('[');
            DumpIpv4(sb, skb, l4 + 8, flags, owner);
            sb.Append("] ");
        }
        if (type == 3 && ic[1] == 4) sb.Append(CultureInfo.InvariantCulture, $"MTU={BinaryPrimitives.ReadUInt16BigEndian(ic[6..])} ");
    }

    /// <summary>required_len[] of nf_log_syslog.c: the bytes an ICMP type needs before its fields are shown.</summary>
    private static int RequiredIcmpLength(byte type) => type switch
    {
        0 or 8 => 4,
        3 or 4 or 5 or 11 or 12 => 8 + 20,
        13 or 14 => 20,
        17 or 18 => 12,
        _ => 0,
    };

    /// <summary>nf_log_dump_tcp_header; true when the dump must stop there (the header is not complete).</summary>
    private static bool DumpTcp(StringBuilder sb, ReadOnlySpan<byte> skb, bool fragment, int offset, Flags flags)
    {
        sb.Append("PROTO=TCP ");
        if (fragment) return false;
        if (skb.Length - offset < 20)
        {
            sb.Append(CultureInfo.InvariantCulture, $"INCOMPLETE [{skb.Length - offset} bytes] ");
            return true;
        }
        ReadOnlySpan<byte> th = skb[offset..];
        sb.Append(CultureInfo.InvariantCulture, $"SPT={BinaryPrimitives.ReadUInt16BigEndian(th)} DPT={BinaryPrimitives.ReadUInt16BigEndian(th[2..])} ");
        if ((flags & Flags.TcpSequence) != 0)
            sb.Append(CultureInfo.InvariantCulture, $"SEQ={BinaryPrimitives.ReadUInt32BigEndian(th[4..])} ACK={BinaryPrimitives.ReadUInt32BigEndian(th[8..])} ");
        sb.Append(CultureInfo.InvariantCulture, $"WINDOW={BinaryPrimitives.ReadUInt16BigEndian(th[14..])} ");
        // The three reserved bits, as (ntohl(flag word & TCP_RESERVED_BITS) >> 22); the fourth is AccECN's AE flag
        // (TCP_RESERVED_BITS is 0x0E000000 since the kernel knows AE).
        sb.Append(CultureInfo.InvariantCulture, $"RES=0x{(th[12] & 0x0e) << 2:x2} ");
        if ((th[12] & 0x01) != 0) sb.Append("AE ");
        byte f = th[13];
        if ((f & 0x80) != 0) sb.Append("CWR ");
        if ((f & 0x40) != 0) sb.Append("ECE ");
        if ((f & 0x20) != 0) sb.Append("URG ");
        if ((f & 0x10) != 0) sb.Append("ACK ");
        if ((f & 0x08) != 0) sb.Append("PSH ");
        if ((f & 0x04) != 0) sb.Append("RST ");
        if ((f & 0x02) != 0) sb.Append("SYN ");
        if ((f & 0x01) != 0) sb.Append("FIN ");
        sb.Append(CultureInfo.InvariantCulture, $"URGP={BinaryPrimitives.ReadUInt16BigEndian(th[18..])} ");
        int doff = (th[12] >> 4) * 4;
        if ((flags & Flags.TcpOptions) != 0 && doff > 20)
        {
            if (skb.Length - offset < doff)
            {
                sb.Append("OPT (TRUNCATED)");
                return true;
            }
            sb.Append("OPT (");
            Hex(sb, th[20..doff]);
            sb.Append(") ");
        }
        return false;
    }

    /// <summary>nf_log_dump_udp_header; true when the header is not complete.</summary>
    private static bool DumpUdp(StringBuilder sb, ReadOnlySpan<byte> skb, byte proto, bool fragment, int offset)
    {
        sb.Append(proto == IpProtocol.Udp ? "PROTO=UDP " : "PROTO=UDPLITE ");
        if (fragment) return false;
        if (skb.Length - offset < 8)
        {
            sb.Append(CultureInfo.InvariantCulture, $"INCOMPLETE [{skb.Length - offset} bytes] ");
            return true;
        }
        ReadOnlySpan<byte> uh = skb[offset..];
        sb.Append(CultureInfo.InvariantCulture,
            $"SPT={BinaryPrimitives.ReadUInt16BigEndian(uh)} DPT={BinaryPrimitives.ReadUInt16BigEndian(uh[2..])} LEN={BinaryPrimitives.ReadUInt16BigEndian(uh[4..])} ");
        return false;
    }

    /// <summary>nf_ip6_ext_hdr: the headers dump_ipv6_packet walks over.</summary>
    private static bool IsExtensionHeader(byte h) => h is 0 or 43 or 44 or 50 or 51 or 59 or 60;

    /// <summary>dump_ipv6_packet: extension headers (shown with --log-ip-options), then the upper layer.</summary>
    private static void DumpIpv6(StringBuilder sb, ReadOnlySpan<byte> skb, int ip6hoff, Flags flags, Skb owner, bool recurse)
    {
        if (skb.Length - ip6hoff < 40)
        {
            sb.Append("TRUNCATED");
            return;
        }
        ReadOnlySpan<byte> ih = skb[ip6hoff..];
        uint first = BinaryPrimitives.ReadUInt32BigEndian(ih);
        sb.Append("SRC=").Append(Addr6(ih[8..])).Append(" DST=").Append(Addr6(ih[24..])).Append(' ');
        sb.Append(CultureInfo.InvariantCulture,
            $"LEN={BinaryPrimitives.ReadUInt16BigEndian(ih[4..]) + 40} TC={(first & 0x0ff00000) >> 20} HOPLIMIT={ih[7]} FLOWLBL={first & 0x000fffff} ");
        bool fragment = false;
        int ptr = ip6hoff + 40;
        byte current = ih[6];
        bool ipopt = (flags & Flags.IpOptions) != 0;
        while (current != 59 && IsExtensionHeader(current))
        {
            if (skb.Length - ptr < 2)
            {
                sb.Append("TRUNCATED");
                return;
            }
            ReadOnlySpan<byte> hp = skb[ptr..];
            if (ipopt) sb.Append("OPT ( ");
            int hdrlen;
            switch (current)
            {
                case 44:
                    {
                        sb.Append("FRAG:");
                        if (skb.Length - ptr < 8)
                        {
                            sb.Append("TRUNCATED ");
                            return;
                        }
                        ushort fo = BinaryPrimitives.ReadUInt16BigEndian(hp[2..]);
                        sb.Append(CultureInfo.InvariantCulture, $"{fo & 0xfff8} ");
                        if ((fo & 1) != 0) sb.Append("INCOMPLETE ");
                        sb.Append(CultureInfo.InvariantCulture, $"ID:{BinaryPrimitives.ReadUInt32BigEndian(hp[4..]):x8} ");
                        if ((fo & 0xfff8) != 0) fragment = true;
                        hdrlen = 8;
                        break;
                    }
                case 60:
                case 43:
                case 0:
                    if (fragment)
                    {
                        if (ipopt) sb.Append(')');
                        return;
                    }
                    hdrlen = (hp[1] + 1) * 8;
                    break;
                case 51:
                    if (ipopt)
                    {
                        sb.Append("AH ");
                        if (fragment)
                        {
                            sb.Append(')');
                            return;
                        }
                        if (skb.Length - ptr < 12)
                        {
                            sb.Append(CultureInfo.InvariantCulture, $"INCOMPLETE [{skb.Length - ptr} bytes] )");
                            return;
                        }
                        sb.Append(CultureInfo.InvariantCulture, $"SPI=0x{BinaryPrimitives.ReadUInt32BigEndian(hp[4..]):x} ");
                    }
                    hdrlen = (hp[1] + 2) * 4;
                    break;
                case 50:
                    if (ipopt)
                    {
                        sb.Append("ESP ");
                        if (fragment)
                        {
                            sb.Append(')');
                            return;
                        }
                        if (skb.Length - ptr < 8)
                        {
                            sb.Append(CultureInfo.InvariantCulture, $"INCOMPLETE [{skb.Length - ptr} bytes] )");
                            return;
                        }
                        sb.Append(CultureInfo.InvariantCulture, $"SPI=0x{BinaryPrimitives.ReadUInt32BigEndian(hp):x} )");
                    }
                    return;
                default:
                    sb.Append(CultureInfo.InvariantCulture, $"Unknown Ext Hdr {current}");
                    return;
            }
            if (ipopt) sb.Append(") ");
            current = hp[0];
            ptr += hdrlen;
        }

        switch (current)
        {
            case IpProtocol.Tcp:
                if (DumpTcp(sb, skb, fragment, ptr, flags)) return;
                break;
            case IpProtocol.Udp:
            case IpProtocol.UdpLite:
                if (DumpUdp(sb, skb, current, fragment, ptr)) return;
                break;
            case IpProtocol.Icmpv6:
                {
                    sb.Append("PROTO=ICMPv6 ");
                    if (fragment) break;
                    if (skb.Length - ptr < 8)
                    {
                        sb.Append(CultureInfo.InvariantCulture, $"INCOMPLETE [{skb.Length - ptr} bytes] ");
                        return;
                    }
                    ReadOnlySpan<byte> ic = skb[ptr..];
                    byte type = ic[0];
                    sb.Append(CultureInfo.InvariantCulture, $"TYPE={type} CODE={ic[1]} ");
                    switch (type)
                    {
                        case 128:
                        case 129:
                            sb.Append(CultureInfo.InvariantCulture,
                                $"ID={BinaryPrimitives.ReadUInt16BigEndian(ic[4..])} SEQ={BinaryPrimitives.ReadUInt16BigEndian(ic[6..])} ");
                            break;
                        case 4:
                        case 1:
                        case 2:
                        case 3:
                            if (type == 4) sb.Append(CultureInfo.InvariantCulture, $"POINTER={BinaryPrimitives.ReadUInt32BigEndian(ic[4..]):x8} ");
                            if (recurse)
                            {
                                sb.Append('[');
                                DumpIpv6(sb, skb, ptr + 8, flags, owner, recurse: false);
                                sb.Append("] ");
                            }
                            if (type == 2) sb.Append(CultureInfo.InvariantCulture, $"MTU={BinaryPrimitives.ReadUInt32BigEndian(ic[4..])} ");
                            break;
                    }
                    break;
                }
            default:
                sb.Append(CultureInfo.InvariantCulture, $"PROTO={current} ");
                break;
        }
        if (!recurse) return;
        if ((flags & Flags.Uid) != 0 && owner.Socket is { } s) sb.Append(CultureInfo.InvariantCulture, $"UID={s.Uid} GID={s.Gid} ");
        if (owner.Mark != 0) sb.Append(CultureInfo.InvariantCulture, $"MARK=0x{owner.Mark:x} ");
    }
}
