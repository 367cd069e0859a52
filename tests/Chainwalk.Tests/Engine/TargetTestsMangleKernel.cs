using Chainwalk.Engine;
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
}
