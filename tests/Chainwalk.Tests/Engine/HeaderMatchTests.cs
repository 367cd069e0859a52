using System.Buffers.Binary;
using Chainwalk.Net;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// The header matches evaluated through the whole pipeline: a packet arrives on eth0 for the host, filter
/// INPUT (policy ACCEPT) holds one rule "-A INPUT &lt;match&gt; -j DROP", and the fate says whether the rule took
/// it ("dropped") or not ("delivered-local"). A hot drop (the kernel's par->hotdrop) is "dropped" by a rule
/// that could not match otherwise. Expectations come from the kernel sources named per row; rows marked
/// "kernel:" were recorded from Linux 6.x with iptables 1.8.9 (nft) in a network namespace.
/// </summary>
public class HeaderMatchTests
{
    private const string Drop = "dropped", Pass = "delivered-local";

    private static PacketBuilder V4() => PacketBuilder.Ipv4("10.0.0.2", "10.0.0.1");

    private static PacketBuilder V6() => PacketBuilder.Ipv6("2001:db8:1::2", "2001:db8:1::1");

    private static byte[] Bytes(params int[] b) => b.Select(x => (byte)x).ToArray();

    /// <summary>A TCP header's first bytes only: ports 1234 → 22, nothing more.</summary>
    private static readonly byte[] ShortTcp = Bytes(0x04, 0xd2, 0x00, 0x16, 0, 0, 0, 0, 0, 0);

    /// <summary>An SCTP common header (ports 5000 → 6000) and chunks DATA (flags 0x03, length 20) and SACK (length 16).</summary>
    private static readonly byte[] SctpDataSack =
    [
        0x13, 0x88, 0x17, 0x70, 0, 0, 0, 1, 0, 0, 0, 0,
        0, 0x03, 0, 20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x61, 0x62, 0x63, 0x64,
        3, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0x10, 0, 0, 0, 0, 0,
    ];

    private static byte[] DccpRequest()
    {
        // DCCP-Request with the extended sequence number (X=1): 16 bytes generic header, 4 bytes service code,
        // then options: NOP (0), option 32 (change-L, length 3, value 2), padding. Data offset 7 words.
        byte[] h = new byte[28];
        BinaryPrimitives.WriteUInt16BigEndian(h, 4000);
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(2), 5001);
        h[4] = 7;
        h[8] = (0 << 1) | 1;
        h[20] = 1;
        h[21] = 32;
        h[22] = 3;
        h[23] = 2;
        return h;
    }

    private static readonly Dictionary<string, Func<byte[]>> Packets = new()
    {
        ["tcp-syn"] = () => V4().Tcp(1234, 22).Build(),
        ["tcp-ack"] = () => V4().Tcp(1234, 22, TcpFlags.Ack).Build(),
        ["tcp-synack-ece"] = () => V4().Tcp(1234, 22, TcpFlags.Syn | TcpFlags.Ack | (TcpFlags)0x40).Build(),
        ["tcp-mss1460"] = () => V4().Tcp(1234, 22).TcpOption(TcpOptionKind.Nop).Mss(1460).Build(),
        ["tcp-sackperm"] = () => V4().Tcp(1234, 22).TcpOption(TcpOptionKind.SackPermitted).Build(),
        ["tcp-short"] = () => V4().Protocol(IpProtocol.Tcp).Payload(ShortTcp).Build(),
        ["tcp-frag8"] = () => V4().Tcp(1234, 22).Fragment(8, false, 7).Build(),
        ["tcp-frag8-zeros"] = () => V4().Protocol(IpProtocol.Tcp).Fragment(8, false, 7).PayloadLength(20).Build(),
        ["tcp-frag16-zeros"] = () => V4().Protocol(IpProtocol.Tcp).Fragment(16, false, 7).PayloadLength(20).Build(),
        ["tcp-frag16"] = () => V4().Tcp(1234, 22).Fragment(16, false, 7).Build(),
        ["tcp-first-frag"] = () => V4().Tcp(1234, 22).Fragment(0, true, 7).Build(),
        ["tcp-2222-to-22"] = () => V4().Tcp(2222, 22).Build(),
        ["tcp-payload"] = () => V4().Tcp(1234, 80, TcpFlags.Ack | TcpFlags.Psh).Payload("GET /abcdefghij HTTP/1.0\r\n"u8).Build(),
        ["tcp-latin1"] = () => V4().Tcp(1234, 80, TcpFlags.Ack).Payload(Bytes(0x78, 0xc9, 0x78)).Build(),
        ["udp-53"] = () => V4().Udp(5353, 53).Build(),
        ["udp-short"] = () => V4().Protocol(IpProtocol.Udp).Payload(Bytes(0x14, 0xe9, 0, 53, 0, 8)).Build(),
        ["udp-frag16"] = () => V4().Udp(5353, 53).Fragment(16, false, 9).Build(),
        ["icmp-echo"] = () => V4().IcmpEcho(1, 1).Build(),
        ["icmp-port-unreach"] = () => V4().Icmp(3, 3).Build(),
        ["icmp-short"] = () => V4().Protocol(IpProtocol.Icmp).Payload(Bytes(8, 0, 0, 0)).Build(),
        ["sctp-data-sack"] = () => V4().Protocol(IpProtocol.Sctp).Payload(SctpDataSack).Build(),
        ["sctp-idata"] = () => V4().Sctp(5000, 6000, 1, 64, 0, Bytes(0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0)).Build(),
        ["sctp-zero-chunk"] = () => V4().Protocol(IpProtocol.Sctp)
            .Payload(Bytes(0x13, 0x88, 0x17, 0x70, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0x03, 0, 0, 0, 0, 0, 1)).Build(),
        ["sctp-init"] = () => V4().SctpInit(5000, 6000, 77).Build(),
        ["sctp-short"] = () => V4().Protocol(IpProtocol.Sctp).Payload(SctpDataSack.AsSpan(0, 12 + 20 + 2)).Build(),
        ["dccp-request"] = () => V4().Protocol(33).Payload(DccpRequest()).Build(),
        ["ah-spi-500"] = () => V4().Protocol(IpProtocol.Ah).Payload(Bytes(6, 1, 0, 0, 0, 0, 0x01, 0xf4, 0, 0, 0, 1)).Build(),
        ["esp-spi-500"] = () => V4().Protocol(IpProtocol.Esp).Payload(Bytes(0, 0, 0x01, 0xf4, 0, 0, 0, 1)).Build(),
        ["esp-short"] = () => V4().Protocol(IpProtocol.Esp).Payload(Bytes(0, 0, 0x01, 0xf4)).Build(),
        ["ipcomp-cpi-300"] = () => V4().Protocol(108).Payload(Bytes(6, 0, 0x01, 0x2c, 1, 2, 3, 4)).Build(),
        ["ttl-5-tos-b9"] = () => V4().Ttl(5).Tos(0xb9).Udp(1, 2).Build(),
        ["len-100"] = () => V4().Udp(1, 2).PayloadLength(100 - 28).Build(),
        ["v6-tcp"] = () => V6().Tcp(1234, 22).Build(),
        ["v6-tc-b9-hl5"] = () => V6().Tos(0xb9).Ttl(5).Udp(1, 2).Build(),
        ["v6-hbh-tcp"] = () => V6().Ipv6Extension(IpProtocol.HopByHop, Bytes(5, 2, 0, 0, 1, 0)).Tcp(1234, 22).Build(),
        ["v6-dst-tcp"] = () => V6().Ipv6Extension(IpProtocol.DestinationOptions, Bytes(1, 4, 0, 0, 0, 0)).Tcp(1234, 22).Build(),
        ["v6-frag-first"] = () => V6().Fragment(0, true, 0x1234).Tcp(1234, 22).Build(),
        ["v6-frag-last"] = () => V6().Fragment(1200, false, 0x1234).Tcp(1234, 22).Build(),
        ["v6-frag-later-data"] = () => V6().Fragment(1200, false, 0x1234).Protocol(IpProtocol.Tcp).Payload(LaterFragmentData()).Build(),
        ["v6-frag8"] = () => V6().Fragment(8, true, 0x1234).Tcp(1234, 22).Build(),
        ["v6-rt0"] = () => V6().Ipv6Extension(IpProtocol.Routing, Rt0()).Tcp(1234, 22).Build(),
        ["v6-srh"] = () => V6().Ipv6Extension(IpProtocol.Routing, Srh()).Tcp(1234, 22).Build(),
        ["v6-ah"] = () => V6().Ipv6Extension(IpProtocol.Ah, Bytes(0, 0, 0, 0, 0x01, 0xf4, 0, 0, 0, 1, 9, 9, 9, 9)).Tcp(1234, 22).Build(),
        ["v6-icmp-echo"] = () => V6().IcmpEcho(1, 1).Build(),
        ["v6-icmp-unreach"] = () => V6().Icmp(1, 4).Build(),
        ["v6-mh-bu"] = () => V6().Protocol(IpProtocol.Mobility).Payload(Bytes(59, 1, 5, 0, 0, 0, 0, 0)).Build(),
        ["v6-mh-bad-proto"] = () => V6().Protocol(IpProtocol.Mobility).Payload(Bytes(6, 1, 5, 0, 0, 0, 0, 0)).Build(),
        ["v6-esp"] = () => V6().Protocol(IpProtocol.Esp).Payload(Bytes(0, 0, 1, 0xf4, 0, 0, 0, 1)).Build(),
        ["v6-none"] = () => V6().Protocol(IpProtocol.NoNextHeader).Build(),
        ["v6-none-data"] = () => V6().Protocol(IpProtocol.NoNextHeader).PayloadLength(8).Build(),
        ["v6-eui64"] = () => PacketBuilder.Ipv6("2001:db8:1:0:211:22ff:fe33:4455", "2001:db8:1::1").Udp(1, 2).Build(),
    };

    /// <summary>A later fragment's data that looks like a TCP header: ports 4369 → 8738, data offset 5, ECE.</summary>
    private static byte[] LaterFragmentData()
    {
        byte[] b = new byte[20];
        b[0] = b[1] = 0x11;
        b[2] = b[3] = 0x22;
        b[12] = 0x50;
        b[13] = 0x40;
        return b;
    }

    private static readonly string[] RtAddresses = ["2001:db8::a", "2001:db8::b", "2001:db8::c"];

    private static byte[] Rt0()
    {
        // Type 0, segments left 2, reserved 0, three addresses.
        byte[] b = new byte[6 + 48];
        b[0] = 0;
        b[1] = 2;
        for (int i = 0; i < 3; i++)
        {
            IpNet.TryParseNumeric(RtAddresses[i], IpFamily.V6, out UInt128 a);
            BinaryPrimitives.WriteUInt128BigEndian(b.AsSpan(6 + i * 16), a);
        }
        return b;
    }

    private static byte[] Srh()
    {
        // Type 4, segments left 1, last entry 2, flags 0, tag 0x0777, segments [0] c, [1] b, [2] a.
        byte[] b = new byte[6 + 48];
        b[0] = 4;
        b[1] = 1;
        b[2] = 2;
        b[4] = 0x07;
        b[5] = 0x77;
        for (int i = 0; i < 3; i++)
        {
            IpNet.TryParseNumeric(RtAddresses[2 - i], IpFamily.V6, out UInt128 a);
            BinaryPrimitives.WriteUInt128BigEndian(b.AsSpan(6 + i * 16), a);
        }
        return b;
    }

    public static TheoryData<string, string, string> V4Rows => new()
    {
        // tcp: ports and flags go to nf_tables as payload compares (iptables 1.8.9 nft.c add_nft_tcp).
        { "-p tcp -m tcp --dport 22", "tcp-syn", Drop },
        { "-p tcp -m tcp --dport 23", "tcp-syn", Pass },
        { "-p tcp -m tcp ! --dport 22", "tcp-syn", Pass },
        { "-p tcp -m tcp --dport 20:30", "tcp-syn", Drop },
        { "-p tcp -m tcp --sport 1000:1233", "tcp-syn", Pass },
        { "-p tcp -m tcp ! --sport 1000:1233", "tcp-syn", Drop },
        { "-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN", "tcp-syn", Drop },
        { "-p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN", "tcp-ack", Pass },
        { "-p tcp -m tcp ! --tcp-flags FIN,SYN,RST,ACK SYN", "tcp-ack", Drop },
        // Native: nft_payload reads a non-first fragment's data as the header (kernel: 20 zero bytes at offset 8
        // count for "! --dport 23", not for "--dport 22"), and no hot drop.
        { "-p tcp -m tcp ! --dport 23", "tcp-frag8-zeros", Drop },
        { "-p tcp -m tcp --dport 22", "tcp-frag8-zeros", Pass },
        { "-p tcp -m tcp --dport 22", "tcp-frag16", Drop },
        // Native: only the bytes each compare reads must be there; a 10-byte TCP "header" still has its ports
        // (kernel: "--dport 22" counts it, "--tcp-flags SYN SYN" does not, the packet goes on).
        { "-p tcp -m tcp --dport 22", "tcp-short", Drop },
        { "-p tcp -m tcp --tcp-flags SYN SYN", "tcp-short", Pass },
        // Native both single ports inverted: one compare of the pair (not (sport == S and dport == D)).
        // kernel: the 1234 -> 22 SYN counts for "! --sport 1234 ! --dport 23", not "! --sport 1234 ! --dport 22".
        { "-p tcp -m tcp ! --sport 1234 ! --dport 23", "tcp-syn", Drop },
        { "-p tcp -m tcp ! --sport 1234 ! --dport 22", "tcp-syn", Pass },
        { "-p tcp -m tcp ! --sport 2222 ! --dport 22", "tcp-2222-to-22", Pass },
        // xt tcp (no option, or --tcp-option): xt_tcpudp.c. Fragment offset 1 is hot-dropped, others just fail
        // (kernel: offset 8 bytes stops the walk, 16 goes on to the next rule).
        { "-p tcp -m tcp", "tcp-syn", Drop },
        { "-p tcp -m tcp", "tcp-frag16", Pass },
        { "-p tcp -m tcp ! --tcp-option 2", "tcp-frag8", Drop },
        { "-p tcp -m tcp ! --tcp-option 2", "tcp-frag16", Pass },
        { "-p tcp -m tcp --tcp-option 2", "tcp-mss1460", Drop },
        { "-p tcp -m tcp --tcp-option 2", "tcp-sackperm", Pass },
        { "-p tcp -m tcp ! --tcp-option 2", "tcp-syn", Drop },
        { "-p tcp -m tcp --tcp-option 4", "tcp-first-frag", Pass },
        // xt tcp on a truncated header: hot drop even where the rule cannot match (kernel: nothing after it counts).
        { "-p tcp -m tcp --dport 22 --tcp-option 99", "tcp-short", Drop },
        { "-p tcp -m tcp --dport 23 --tcp-option 99", "tcp-syn", Pass },
        // udp: native with a port, xt udp without (xt_tcpudp.c: truncated header hot-dropped). kernel: a 6-byte
        // UDP "header" counts for "! --dport 54" and is hot-dropped by "-p udp -m udp".
        { "-p udp -m udp --dport 53", "udp-53", Drop },
        { "-p udp -m udp --sport 5353 --dport 54", "udp-53", Pass },
        { "-p udp -m udp ! --dport 54", "udp-short", Drop },
        { "-p udp -m udp ! --dport 54", "udp-frag16", Drop },
        { "-p udp -m udp", "udp-short", Drop },
        // 1.8.9 emits no compare for a full range, even inverted (kernel: saved back as "-p udp", matches all).
        { "-p udp -m udp ! --sport 0:65535", "udp-53", Drop },
        { "-p udp -m udp ! --dport 0:65535 --sport 5353", "udp-53", Drop },
        { "-p udp -m udp", "udp-frag16", Pass },
        // icmp (icmp_match): "any" is type 255; code ranges; a short header is hot-dropped.
        { "-p icmp -m icmp --icmp-type 8", "icmp-echo", Drop },
        { "-p icmp -m icmp --icmp-type 0", "icmp-echo", Pass },
        { "-p icmp -m icmp --icmp-type any", "icmp-port-unreach", Drop },
        { "-p icmp -m icmp ! --icmp-type any", "icmp-port-unreach", Pass },
        { "-p icmp -m icmp --icmp-type 3/3", "icmp-port-unreach", Drop },
        { "-p icmp -m icmp --icmp-type 3/1", "icmp-port-unreach", Pass },
        { "-p icmp -m icmp --icmp-type 3", "icmp-port-unreach", Drop },
        { "-p icmp -m icmp ! --icmp-type 3", "icmp-port-unreach", Pass },
        { "-p icmp -m icmp --icmp-type 0", "icmp-short", Drop },
        // multiport (xt_multiport.c v1): lists, ranges, inversion; fragments fail; short ports hot-dropped.
        { "-p tcp -m multiport --dports 80,443,20:25", "tcp-syn", Drop },
        { "-p tcp -m multiport --dports 80,443,23:25", "tcp-syn", Pass },
        { "-p tcp -m multiport ! --dports 80,443", "tcp-syn", Drop },
        { "-p tcp -m multiport ! --dports 80,22", "tcp-syn", Pass },
        { "-p tcp -m multiport --sports 1234", "tcp-syn", Drop },
        { "-p tcp -m multiport --ports 1000:1300", "tcp-syn", Drop },
        { "-p tcp -m multiport --ports 2000,23", "tcp-syn", Pass },
        { "-p tcp -m multiport ! --dports 80", "tcp-frag16", Pass },
        { "-p udp -m multiport ! --dports 53", "udp-short", Pass },
        { "-p tcp -m multiport --dports 22", "tcp-short", Drop },
        // sctp (xt_sctp.c): chunk types any/all/only with flags (these rows: kernel).
        { "-p sctp -m sctp --dport 6000", "sctp-data-sack", Drop },
        { "-p sctp -m sctp --sport 5001", "sctp-data-sack", Pass },
        { "-p sctp -m sctp --chunk-types any INIT", "sctp-init", Drop },
        { "-p sctp -m sctp --chunk-types any INIT", "sctp-data-sack", Pass },
        { "-p sctp -m sctp --chunk-types all DATA,SACK", "sctp-data-sack", Drop },
        { "-p sctp -m sctp --chunk-types all DATA,SACK,INIT", "sctp-data-sack", Pass },
        { "-p sctp -m sctp --chunk-types only DATA", "sctp-data-sack", Pass },
        { "-p sctp -m sctp --chunk-types only DATA,SACK,INIT", "sctp-data-sack", Drop },
        { "-p sctp -m sctp ! --chunk-types only DATA", "sctp-data-sack", Drop },
        { "-p sctp -m sctp --chunk-types any DATA:BE", "sctp-data-sack", Drop },
        { "-p sctp -m sctp --chunk-types any DATA:Be", "sctp-data-sack", Pass },
        { "-p sctp -m sctp --chunk-types all DATA:be,SACK", "sctp-data-sack", Pass },
        { "-p sctp -m sctp --chunk-types any ALL", "sctp-data-sack", Drop },
        // libxt_sctp keys chunk flags by its name table's index (I_DATA is 15, its type 64): the flag condition
        // never meets an I_DATA chunk (kernel: "any I_DATA:BE" counts an I_DATA chunk with no flags).
        { "-p sctp -m sctp --chunk-types any I_DATA:BE", "sctp-idata", Drop },
        // The second chunk header is cut: xt_sctp hot-drops while walking.
        { "-p sctp -m sctp --chunk-types any SACK", "sctp-short", Drop },
        { "-p sctp -m sctp --chunk-types any INIT", "sctp-short", Drop },
        // A chunk of length 0 is hot-dropped too (kernel: "any DATA" stops the walk on a DATA chunk of length 0).
        { "-p sctp -m sctp --chunk-types any INIT", "sctp-zero-chunk", Drop },
        { "-p sctp -m sctp --dport 6000", "sctp-zero-chunk", Drop },
        { "-p sctp -m sctp --dport 6001", "sctp-zero-chunk", Pass },
        // dccp (xt_dccp.c)
        { "-p dccp -m dccp --dport 5001 --dccp-types REQUEST", "dccp-request", Drop },
        { "-p dccp -m dccp --dccp-types DATA,ACK", "dccp-request", Pass },
        { "-p dccp -m dccp ! --dccp-types DATA,ACK", "dccp-request", Drop },
        { "-p dccp -m dccp --dccp-option 32", "dccp-request", Drop },
        { "-p dccp -m dccp --dccp-option 33", "dccp-request", Pass },
        { "-p dccp -m dccp ! --sport 4000", "dccp-request", Pass },
        // ah / esp / ipcomp: the SPI (CPI for ipcomp, 16 bits).
        { "-p ah -m ah --ahspi 500", "ah-spi-500", Drop },
        { "-p ah -m ah --ahspi 501:600", "ah-spi-500", Pass },
        { "-p esp -m esp --espspi 400:500", "esp-spi-500", Drop },
        { "-p esp -m esp ! --espspi 500", "esp-spi-500", Pass },
        { "-p esp -m esp ! --espspi 500", "esp-short", Drop },
        { "-p ipcomp -m ipcomp --ipcompspi 300", "ipcomp-cpi-300", Drop },
        { "-p ipcomp -m ipcomp --ipcompspi 301:400", "ipcomp-cpi-300", Pass },
        // iprange, length, ttl, tos, dscp, ecn
        { "-m iprange --src-range 10.0.0.1-10.0.0.9", "tcp-syn", Drop },
        { "-m iprange --src-range 10.0.0.3-10.0.0.9", "tcp-syn", Pass },
        { "-m iprange ! --src-range 10.0.0.3-10.0.0.9 --dst-range 10.0.0.1-10.0.0.1", "tcp-syn", Drop },
        { "-m length --length 100", "len-100", Drop },
        { "-m length --length 0:99", "len-100", Pass },
        { "-m length ! --length 0:99", "len-100", Drop },
        { "-m ttl --ttl-eq 5", "ttl-5-tos-b9", Drop },
        { "-m ttl --ttl-lt 5", "ttl-5-tos-b9", Pass },
        { "-m ttl --ttl-gt 4", "ttl-5-tos-b9", Drop },
        { "-m ttl ! --ttl-eq 5", "ttl-5-tos-b9", Pass },
        { "-m tos --tos 0xb8/0xfc", "ttl-5-tos-b9", Drop },
        { "-m tos --tos 0xb9", "ttl-5-tos-b9", Drop },
        { "-m tos --tos 0xb8", "ttl-5-tos-b9", Pass },
        { "-m tos ! --tos 0xb8", "ttl-5-tos-b9", Drop },
        { "-m dscp --dscp 0x2e", "ttl-5-tos-b9", Drop },
        { "-m dscp --dscp-class AF41", "ttl-5-tos-b9", Pass },
        { "-m dscp ! --dscp 0x2e", "ttl-5-tos-b9", Pass },
        { "-m ecn --ecn-ip-ect 1", "ttl-5-tos-b9", Drop },
        { "-m ecn ! --ecn-ip-ect 1", "ttl-5-tos-b9", Pass },
        { "-p tcp -m ecn --ecn-tcp-ece", "tcp-synack-ece", Drop },
        { "-p tcp -m ecn --ecn-tcp-ece", "tcp-syn", Pass },
        { "-p tcp -m ecn ! --ecn-tcp-cwr --ecn-tcp-ece", "tcp-synack-ece", Drop },
        // tcpmss (xt_tcpmss.c): no MSS option matches only inverted; a short header is hot-dropped.
        { "-p tcp -m tcpmss --mss 1400:1500", "tcp-mss1460", Drop },
        { "-p tcp -m tcpmss --mss 536", "tcp-mss1460", Pass },
        { "-p tcp -m tcpmss ! --mss 536", "tcp-syn", Drop },
        { "-p tcp -m tcpmss --mss 536", "tcp-syn", Pass },
        { "-p tcp -m tcpmss --mss 536", "tcp-short", Drop },
        // No fragment check: a later fragment's zero bytes are a TCP header with data offset 0, hot-dropped (kernel).
        { "-p tcp -m tcpmss ! --mss 536", "tcp-frag16-zeros", Drop },
        { "-p tcp -m tcpmss --mss 536", "tcp-frag16-zeros", Drop },
        // u32 (xt_u32.c): "@" jumps over the IP header; a read past the end is false before inversion
        // (kernel: on a 40-byte SYN "36=..." counts, "37=..." does not, "! ...@100=0" does).
        { "-m u32 --u32 \"0>>22&0x3C@0>>16=1234\"", "tcp-syn", Drop },
        { "-m u32 --u32 \"0>>22&0x3C@0>>16=1233\"", "tcp-syn", Pass },
        { "-m u32 --u32 \"6&0xFF=6&&0>>22&0x3C@0&0xFFFF=20:30,80\"", "tcp-syn", Drop },
        { "-m u32 --u32 \"6&0xFF=17&&0>>22&0x3C@0&0xFFFF=22\"", "tcp-syn", Pass },
        { "-m u32 --u32 \"0>>22&0x3C@100=0\"", "tcp-syn", Pass },
        { "-m u32 ! --u32 \"0>>22&0x3C@100=0\"", "tcp-syn", Drop },
        { "-m u32 --u32 \"36=0:0xFFFFFFFF\"", "tcp-syn", Drop },
        { "-m u32 --u32 \"37=0:0xFFFFFFFF\"", "tcp-syn", Pass },
        { "-m u32 --u32 \"0>>22&0x3C@12>>26&0x3C@0=0x47455420\"", "tcp-payload", Drop },
        // string (xt_string.c / skb_find_text): the whole pattern inside [from, to), offsets from the IP header.
        // kernel: "--from 40 --to 45" finds "GET /" at 40, "--to 44" does not; |e9| --icase finds 0xc9 (bm and kmp).
        { "-m string --string \"GET /\" --algo bm", "tcp-payload", Drop },
        { "-m string --string \"GET /\" --algo kmp --from 40 --to 45", "tcp-payload", Drop },
        { "-m string --string \"GET /\" --algo kmp --from 40 --to 44", "tcp-payload", Pass },
        { "-m string --string \"GET /\" --algo bm --from 41", "tcp-payload", Pass },
        { "-m string --string \"get /ABC\" --algo bm --icase", "tcp-payload", Drop },
        { "-m string --string \"get /ABC\" --algo kmp", "tcp-payload", Pass },
        { "-m string ! --string \"POST\" --algo bm", "tcp-payload", Drop },
        { "-m string --hex-string \"|e9|\" --algo bm --icase", "tcp-latin1", Drop },
        { "-m string --hex-string \"|e9|\" --algo bm", "tcp-latin1", Pass },
        // comment: always matches.
        { "-m comment --comment \"any packet\"", "udp-53", Drop },
    };

    public static TheoryData<string, string, string> V6Rows => new()
    {
        { "-p tcp -m tcp --dport 22", "v6-hbh-tcp", Drop },
        { "-p tcp -m tcp --dport 22 --tcp-option 99", "v6-frag-last", Pass },
        // IPv6 par->fragoff is in bytes, so offset 8 is not the "offset 1" TCP fragment: no hot drop.
        { "-p tcp -m tcp ! --tcp-option 99", "v6-frag8", Pass },
        // nf_tables' transport offset of an IPv6 later fragment is 0 (ipv6_find_hdr does not store it), so native
        // ports and the xt matches that skip the fragment check read the IPv6 header. kernel: "--sport 24576"
        // (0x6000) counts, "--sport 4369" does not; ECE is read from the source address (clear); tcpmss finds a
        // data offset of 0 there and hot-drops.
        { "-p tcp -m tcp --sport 24576", "v6-frag-later-data", Drop },
        { "-p tcp -m tcp --sport 4369", "v6-frag-later-data", Pass },
        { "-p tcp -m tcp --dport 0", "v6-frag-later-data", Drop },
        { "-p tcp -m ecn --ecn-tcp-ece", "v6-frag-later-data", Pass },
        { "-p tcp -m ecn ! --ecn-tcp-ece", "v6-frag-later-data", Drop },
        { "-p tcp -m tcpmss ! --mss 536", "v6-frag-later-data", Drop },
        { "-p ipv6-icmp -m icmp6 --icmpv6-type echo-request", "v6-icmp-echo", Drop },
        { "-p ipv6-icmp -m icmp6 --icmpv6-type 1/4", "v6-icmp-unreach", Drop },
        { "-p ipv6-icmp -m icmp6 --icmpv6-type 1/0", "v6-icmp-unreach", Pass },
        { "-p ipv6-icmp -m icmp6 ! --icmpv6-type 1", "v6-icmp-unreach", Pass },
        // hl, tos, dscp, ecn, length, iprange on IPv6 (kernel, as icmp6 and dst above and below).
        { "-m hl --hl-eq 5", "v6-tc-b9-hl5", Drop },
        { "-m hl --hl-lt 5", "v6-tc-b9-hl5", Pass },
        { "-m tos --tos 0xb9", "v6-tc-b9-hl5", Drop },
        { "-m dscp --dscp 0x2e", "v6-tc-b9-hl5", Drop },
        { "-m ecn --ecn-ip-ect 2", "v6-tc-b9-hl5", Pass },
        { "-m length --length 48", "v6-tc-b9-hl5", Drop },
        { "-m iprange --dst-range 2001:db8:1::1-2001:db8:1::ff", "v6-tcp", Drop },
        { "-m iprange --src-range 2001:db8:1::3-2001:db8:1::ff", "v6-tcp", Pass },
        // hbh / dst (ip6t_hbh.c): length in bytes, options in order (the hbh and rt rows: kernel).
        { "-m hbh --hbh-len 8", "v6-hbh-tcp", Drop },
        { "-m hbh ! --hbh-len 8", "v6-hbh-tcp", Pass },
        { "-m hbh --hbh-opts 5:2,1:0", "v6-hbh-tcp", Drop },
        { "-m hbh --hbh-opts 5", "v6-hbh-tcp", Drop },
        { "-m hbh --hbh-opts 5:4", "v6-hbh-tcp", Pass },
        { "-m hbh --hbh-opts 1", "v6-hbh-tcp", Pass },
        { "-m hbh", "v6-tcp", Pass },
        { "-m dst --dst-opts 1:4", "v6-dst-tcp", Drop },
        { "-m dst", "v6-hbh-tcp", Pass },
        // frag (ip6t_frag.c): finds the fragment header of later fragments too (kernel: a last fragment counts
        // for --fraglast and --fragid, not --fragmore or --fragfirst).
        { "-m frag --fragid 0x1234 --fragfirst", "v6-frag-first", Drop },
        { "-m frag --fragfirst", "v6-frag-last", Pass },
        { "-m frag --fraglast", "v6-frag-last", Drop },
        { "-m frag --fragmore", "v6-frag-last", Pass },
        { "-m frag ! --fragid 0x1234", "v6-frag-first", Pass },
        { "-m frag --fragid 0x1000:0x2000", "v6-frag8", Drop },
        { "-m frag", "v6-tcp", Pass },
        // rt (ip6t_rt.c)
        { "-m rt --rt-type 0 --rt-segsleft 2 --rt-len 56", "v6-rt0", Drop },
        { "-m rt --rt-segsleft 3:10", "v6-rt0", Pass },
        { "-m rt --rt-type 0 --rt-0-res", "v6-rt0", Drop },
        { "-m rt --rt-type 0 --rt-0-addrs 2001:db8::a,2001:db8::b,2001:db8::c", "v6-rt0", Drop },
        { "-m rt --rt-type 0 --rt-0-addrs 2001:db8::a,2001:db8::b", "v6-rt0", Pass },
        { "-m rt --rt-type 0 --rt-0-addrs 2001:db8::a,2001:db8::c --rt-0-not-strict", "v6-rt0", Drop },
        { "-m rt --rt-type 0 --rt-0-addrs 2001:db8::c,2001:db8::a --rt-0-not-strict", "v6-rt0", Pass },
        // srh (ip6t_srh.c): segments [c, b, a], segments left 1: previous a, next c, last a.
        { "-m srh --srh-next-hdr 6 --srh-segs-left-eq 1 --srh-last-entry-eq 2", "v6-srh", Drop },
        // The tag is compared in the wrong byte order on a little-endian host (kernel: tag 0x0777 is matched
        // by --srh-tag 0x7707, not by 0x777).
        { "-m srh --srh-tag 0x7707", "v6-srh", Drop },
        { "-m srh --srh-tag 0x777", "v6-srh", Pass },
        { "-m srh --srh-segs-left-gt 1", "v6-srh", Pass },
        { "-m srh ! --srh-segs-left-gt 1", "v6-srh", Drop },
        { "-m srh --srh-hdr-len-eq 6", "v6-srh", Drop },
        { "-m srh --srh-psid 2001:db8::a", "v6-srh", Drop },
        { "-m srh --srh-nsid 2001:db8::c", "v6-srh", Drop },
        { "-m srh --srh-lsid 2001:db8::a/64", "v6-srh", Drop },
        { "-m srh --srh-nsid 2001:db8::b", "v6-srh", Pass },
        { "-m srh", "v6-rt0", Pass },
        // ah (ip6t_ah.c): the AH header found among the extension headers; length in bytes.
        { "-m ah --ahspi 500 --ahlen 16", "v6-ah", Drop },
        { "-m ah --ahspi 500 ! --ahlen 16", "v6-ah", Pass },
        { "-m ah --ahres", "v6-ah", Drop },
        { "-m ah", "v6-tcp", Pass },
        // ipv6header (ip6t_ipv6header.c)
        { "-m ipv6header --header hop,prot", "v6-hbh-tcp", Drop },
        { "-m ipv6header --header hop", "v6-hbh-tcp", Pass },
        { "-m ipv6header --header hop --soft", "v6-hbh-tcp", Drop },
        { "-m ipv6header ! --header prot", "v6-hbh-tcp", Drop },
        { "-m ipv6header --header prot", "v6-tcp", Drop },
        { "-m ipv6header --header frag,prot", "v6-frag-first", Drop },
        { "-m ipv6header --header esp", "v6-esp", Drop },
        { "-m ipv6header --header none", "v6-none-data", Drop },
        // "No next header" is seen before the length check: an empty payload matches too (kernel).
        { "-m ipv6header --header none", "v6-none", Drop },
        // --soft with "!": the kernel XORs a truth value with 0xff, so it matches any packet (kernel: a plain
        // TCP packet and an empty no-next-header packet both count).
        { "-m ipv6header ! --header hop --soft", "v6-hbh-tcp", Drop },
        { "-m ipv6header ! --header hop --soft", "v6-tcp", Drop },
        // mh (ip6t_mh.c): payload proto other than 59 is hot-dropped (kernel: nothing after it counts).
        { "-p mh -m mh --mh-type binding-update", "v6-mh-bu", Drop },
        { "-p mh -m mh --mh-type 6:10", "v6-mh-bu", Pass },
        { "-p mh -m mh --mh-type 6:10", "v6-mh-bad-proto", Drop },
        // esp on IPv6 (xt_esp.c)
        { "-p esp -m esp --espspi 500", "v6-esp", Drop },
        { "-m comment --comment x", "v6-tcp", Drop },
    };

    [Theory]
    [MemberData(nameof(V4Rows))]
    public void Ipv4_rule_takes_packet_or_not(string rule, string packet, string fate) =>
        MatchTestHost.Fate(IpFamily.V4, rule, Packets[packet]()).ShouldBe(fate, $"{rule} on {packet}");

    [Theory]
    [MemberData(nameof(V6Rows))]
    public void Ipv6_rule_takes_packet_or_not(string rule, string packet, string fate) =>
        MatchTestHost.Fate(IpFamily.V6, rule, Packets[packet]()).ShouldBe(fate, $"{rule} on {packet}");

    /// <summary>xt_u32.c refuses shifts of 32 or more when the rule is loaded (kernel: EINVAL for both, 31 loads).</summary>
    [Theory]
    [InlineData("-m u32 --u32 \"0>>32=0\"", true)]
    [InlineData("-m u32 --u32 \"0<<33=0\"", true)]
    [InlineData("-m u32 --u32 \"0>>31=0\"", false)]
    public void U32_shift_of_32_or_more_is_refused_at_load(string rule, bool refused)
    {
        Exception? error = Record.Exception(() => MatchTestHost.WithInputRule(IpFamily.V4, rule));
        if (refused) error.ShouldNotBeNull().Message.ShouldContain("Invalid argument");
        else error.ShouldBeNull();
    }

    public static TheoryData<string, ulong?, string> Eui64Rows => new()
    {
        { "matching MAC", 0x001122334455UL, Drop },
        { "other MAC", 0x001122334456UL, Pass },
        { "no MAC given", null, Pass },
    };

    /// <summary>ip6t_eui64.c: the interface identifier against the Ethernet source address (the two MAC rows: kernel).</summary>
    [Theory]
    [MemberData(nameof(Eui64Rows))]
    public void Eui64_compares_source_with_mac(string name, ulong? mac, string fate) =>
        MatchTestHost.Fate(IpFamily.V6, "-m eui64", Packets["v6-eui64"](), mac).ShouldBe(fate, name);
}
