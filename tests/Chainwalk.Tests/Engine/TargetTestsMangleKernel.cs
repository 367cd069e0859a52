using Chainwalk.Engine;
using Chainwalk.Wire;
using Shouldly;
using Xunit;
using static Chainwalk.Tests.Engine.TargetTestHost;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// Mangle targets on forwarded packets, recorded from the real kernel (6.18, iptables-nft 1.8.9): three network
/// namespaces in a row joined by veth pairs, the middle one forwarding from 10.0.0.1/24 to 192.168.1.10/24 with the
/// rule in mangle FORWARD (selected there by destination port); scapy sends from 10.0.0.2 and captures on the far
/// side what arrives. The forwarded packet is compared byte for byte (its TTL already lowered by forwarding; the
/// checksums adjusted as the targets adjust them).
/// </summary>
public class TargetTestsMangleKernel
{
    public static TheoryData<string, string, string, string> Recorded => new()
    {
        { "ttl-set", "-j TTL --ttl-set 5", "4500001e000100004011af100a000002c0a80114000107d1000acae76162", "4500001e000100000511ea100a000002c0a80114000107d1000acae76162" },
        { "ttl-dec", "-j TTL --ttl-dec 10", "4500001e000200004011af0f0a000002c0a80114000107d2000acae66162", "4500001e000200003511ba0f0a000002c0a80114000107d2000acae66162" },
        { "dscp", "-j DSCP --set-dscp 0x2e", "4501001e000300004011af0d0a000002c0a80114000107d3000acae56162", "45b9001e000300003f11af550a000002c0a80114000107d3000acae56162" },
        { "tos", "-j TOS --set-tos 0x10/0x3f", "45c1001e000400004011ae4c0a000002c0a80114000107d4000acae46162", "45d0001e000400003f11af3d0a000002c0a80114000107d4000acae46162" },
        { "ecn-tcp-remove", "-p tcp -j ECN --ecn-tcp-remove", "45000028000500004006af0d0a000002c0a80114000107d5000000090000000050c22000bb850000", "45000028000500003f06b00d0a000002c0a80114000107d5000000090000000050022000bc450000" },
        { "tcpmss-lower", "-p tcp -j TCPMSS --set-mss 1200", "45000030000600004006af040a000002c0a80114000107d6000000090000000070022000907a0000020405b401030307", "45000030000600003f06b0040a000002c0a80114000107d6000000090000000070022000917e0000020404b001030307" },
        { "tcpmss-add", "-p tcp -j TCPMSS --set-mss 1200", "45000028000700004006af0b0a000002c0a80114000107d7000000090000000050022000bc430000", "4500002c000700003f06b0070a000002c0a80114000107d7000000090000000060022000a823000002040218" },
        { "tcpmss-clamp", "-p tcp -j TCPMSS --clamp-mss-to-pmtu", "4500002c000800004006af060a000002c0a80114000107d8000000090000000060022000873a000002042300", "4500002c000800003f06b0060a000002c0a80114000107d8000000090000000060022000a4860000020405b4" },
        { "tcpoptstrip", "-p tcp -j TCPOPTSTRIP --strip-options mss,wscale", "45000034000900004006aefd0a000002c0a80114000107d90000000900000000800220007c710000020405b40402010303070000", "45000034000900003f06affd0a000002c0a80114000107d9000000090000000080022000842f0000010101010402010101010000" },
        { "ecn-ip-ect", "-j ECN --ecn-ip-ect 1", "45b8001e000a00004011ae4f0a000002c0a80114000107da000acade6162", "45b9001e000a00003f11af4e0a000002c0a80114000107da000acade6162" },
    };

    [Theory]
    [MemberData(nameof(Recorded))]
    public void Forwarded_packet_matches_the_kernel(string name, string rule, string sentHex, string kernelHex)
    {
        var nf = new Netfilter(Create(Table("mangle", "-A FORWARD " + rule), extra: "sysctl -w net.ipv4.ip_forward=1"));
        PacketResult r = Receive(nf, Convert.FromHexString(sentHex));
        r.Fate.ShouldBe(["forwarded:eth1"], name);
        OutputPacket o = r.Outputs.ShouldHaveSingleItem(name);
        Hex(o.Bytes).ShouldBe(kernelHex, name);
    }

    /// <summary>
    /// Recorded the same way, the copy of TEE (the rule in the middle namespace's mangle PREROUTING, the original
    /// delivered there, the copy captured at the gateway: note DF, which nf_dup_ipv4 sets on every copy) and IPv6
    /// forwarding through SNPT (POSTROUTING), HL and TCPMSS (FORWARD).
    /// </summary>
    public static TheoryData<string, string, string, string, string> RecordedMore => new()
    {
        { "tee", "mangle PREROUTING", "-j TEE --gateway 192.168.1.20", "4500001f000b00001e1188c10a0000020a00000100010bb9000b06b6746565", "4500001f000b40001d1149c10a0000020a00000100010bb9000b06b6746565" },
        { "snpt", "mangle POSTROUTING", "-s fd01:203:405::/48 -j SNPT --src-pfx fd01:203:405::/48 --dst-pfx 2001:db8:5::/48", "6000000000140640fd01020304050001000000000000123420010db8000200000000000000000020000100500000000500000000500220004c730000", "600000000014063f20010db80005d54c000000000000123420010db8000200000000000000000020000100500000000500000000500220004c730000" },
        { "hl-set", "mangle FORWARD", "-j HL --hl-set 7", "60000000000a113220010db800010000000000000000000220010db800020000000000000000002000010bbb000a301b686c", "60000000000a110720010db800010000000000000000000220010db800020000000000000000002000010bbb000a301b686c" },
        { "tcpmss6-clamp", "mangle FORWARD", "-p tcp -j TCPMSS --clamp-mss-to-pmtu", "600000000018064020010db800010000000000000000000220010db800020000000000000000002000010bbc000000050000000060022000f3950000020422ec", "600000000018063f20010db800010000000000000000000220010db800020000000000000000002000010bbc00000005000000006002200010e20000020405a0" },
    };

    [Theory]
    [MemberData(nameof(RecordedMore))]
    public void Packet_leaving_by_eth1_matches_the_kernel(string name, string tableChain, string rule, string sentHex, string kernelHex)
    {
        string[] tc = tableChain.Split(' ');
        byte[] sent = Convert.FromHexString(sentHex);
        string rules = Table(tc[0], $"-A {tc[1]} {rule}");
        bool v6 = (sent[0] >> 4) == 6;
        var host = v6
            ? Create(v6Rules: rules, extra: ["sysctl -w net.ipv6.conf.all.forwarding=1", "ip -6 addr add 2001:db8:2::1/64 dev eth1 nodad"])
            : Create(rules);
        PacketResult r = Receive(new Netfilter(host), sent);
        OutputPacket o = r.Outputs.ShouldHaveSingleItem(name);
        o.Interface.ShouldBe("eth1", name);
        Hex(o.Bytes).ShouldBe(kernelHex, name);
    }

    /// <summary>
    /// SYNPROXY's SYN-ACK recorded from the kernel (rule in filter INPUT with --mss 1460 --wscale 7 --sack-perm
    /// --timestamp): everything but the cookie (the sequence number, siphash-keyed by a boot secret), the clock part
    /// of the timestamp value (its low 6 bits carry the client's window scale and the SACK flag) and so the checksum.
    /// </summary>
    [Fact]
    public void Synproxy_synack_matches_the_kernel_but_cookie_and_clock()
    {
        const string syn = "4500003c00030000400666ae0a00000b0a0000019c401388000003e800000000a002200060780000020405780402080a000000090000000001030306";
        const string kernel = "4500003c00004000400626b10a0000010a00000b13889c40ffbb6f6c000003e9a012000024cc0000020405b40402080a009feb960000000901030307";
        var nf = new Netfilter(Create(Table("filter", "-A INPUT -p tcp -j SYNPROXY --mss 1460 --wscale 7 --sack-perm --timestamp")));
        PacketResult r = Receive(nf, Convert.FromHexString(syn));
        r.Fate.ShouldBe(["stolen"]);
        byte[] ours = r.Outputs.ShouldHaveSingleItem().Bytes;
        Hex(Mask(ours)).ShouldBe(Hex(Mask(Convert.FromHexString(kernel))));
    }

    private static byte[] Mask(byte[] b)
    {
        byte[] c = b.ToArray();
        // TCP sequence (cookie), checksum, and the timestamp value's clock bits (TS option at TCP offset 24).
        for (int i = 24; i < 28; i++) c[i] = 0;
        c[36] = c[37] = 0;
        for (int i = 48; i < 51; i++) c[i] = 0;
        c[51] &= 0x3f;
        return c;
    }

    /// <summary>
    /// NFQUEUE without a program on the queue, recorded from the kernel with the NFQUEUE rule in mangle INPUT and a
    /// REJECT in filter INPUT: without --queue-bypass nothing comes back (dropped), with it the packet goes on to the
    /// filter table and is rejected. Chainwalk reports the fate queued:N either way and explains what the kernel does.
    /// </summary>
    [Theory]
    [InlineData("", "drops the packet")]
    [InlineData("--queue-bypass", "lets the packet go on")]
    public void Nfqueue_without_listener_is_explained_as_the_kernel_behaves(string bypass, string explained)
    {
        var nf = new Netfilter(Create(Table("mangle", "-A INPUT -j NFQUEUE --queue-num 3 " + bypass))) { RecordTrace = true };
        PacketResult r = Receive(nf, PacketBuilder.Ipv4("10.0.0.12", "10.0.0.1").Udp(1, 4000).Payload([0x71]).Build());
        r.Fate.ShouldBe(["queued:3"]);
        r.Trace!.OfType<NoteEvent>().ShouldContain(n => n.Text.Contains(explained, StringComparison.Ordinal));
    }
}
