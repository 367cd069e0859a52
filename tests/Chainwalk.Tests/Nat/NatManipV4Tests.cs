using System.Buffers.Binary;
using Chainwalk.Nat;
using Chainwalk.Wire;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Nat;

/// <summary>
/// <see cref="NatPacket.ManipV4"/> folds the address's and the port's checksum changes once (session 12); the kernel
/// (nf_nat_ipv4_manip_pkt, tcp_manip_pkt / udp_manip_pkt) updates them one after the other: inet_proto_csum_replace4 for the
/// pseudo header's address, inet_proto_csum_replace2 for the port, csum_replace4 for the IP header. The reference below
/// does the kernel's steps with <see cref="NatPacket.Replace"/>; every byte of the rewritten packet must agree, for
/// checksums right and wrong by any amount (0x0000 and 0xffff included), addresses and ports kept or changed, TCP with and
/// without its whole header, UDP with and without a checksum, UDP-Lite.
/// </summary>
public class NatManipV4Tests
{
    public static TheoryData<int, byte> Cases() => new()
    {
        { 1, IpProtocol.Tcp },
        { 2, IpProtocol.Udp },
        { 3, IpProtocol.UdpLite },
        { 4, IpProtocol.Tcp },
        { 5, IpProtocol.Udp },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void The_folded_rewrite_writes_the_kernels_steps_bytes(int seed, byte protocol)
    {
        var rnd = new Random(seed);
        int zeroResults = 0;
        for (int i = 0; i < 20_000; i++)
        {
            int transport = protocol == IpProtocol.Tcp ? (rnd.Next(8) == 0 ? 8 : 20) : 8;
            int payload = rnd.Next(0, 5);
            var a = new byte[20 + transport + payload];
            a[0] = 0x45;
            BinaryPrimitives.WriteUInt16BigEndian(a.AsSpan(2), (ushort)a.Length);
            a[8] = 64;
            a[9] = protocol;
            rnd.NextBytes(a.AsSpan(12, 8));
            rnd.NextBytes(a.AsSpan(20));
            // Addresses and ports at the edges now and then (all ones, zero), checksums anything.
            if (rnd.Next(8) == 0) BinaryPrimitives.WriteUInt32BigEndian(a.AsSpan(12 + 4 * rnd.Next(2)), rnd.Next(2) == 0 ? 0u : uint.MaxValue);
            BinaryPrimitives.WriteUInt16BigEndian(a.AsSpan(10), Edge(rnd));
            int checkOff = 20 + (protocol == IpProtocol.Tcp ? 16 : 6);
            if (checkOff + 2 <= a.Length) BinaryPrimitives.WriteUInt16BigEndian(a.AsSpan(checkOff), Edge(rnd));
            NatManip manip = rnd.Next(2) == 0 ? NatManip.Src : NatManip.Dst;
            int addrOff = manip == NatManip.Src ? 12 : 16;
            int portOff = 20 + (manip == NatManip.Src ? 0 : 2);
            uint oldIp = BinaryPrimitives.ReadUInt32BigEndian(a.AsSpan(addrOff));
            ushort oldPort = BinaryPrimitives.ReadUInt16BigEndian(a.AsSpan(portOff));
            int k = rnd.Next(6);
            uint ip = k == 0 ? oldIp : k == 1 ? ~oldIp : k == 2 ? (rnd.Next(2) == 0 ? 0u : uint.MaxValue) : (uint)rnd.Next() ^ ((uint)rnd.Next(2) << 31);
            int m = rnd.Next(5);
            ushort port = m == 0 ? oldPort : m == 1 ? (ushort)~oldPort : m == 2 ? (rnd.Next(2) == 0 ? (ushort)0 : ushort.MaxValue) : (ushort)rnd.Next(65536);
            byte[] b = a.ToArray();
            Steps(a, protocol, ip, port, manip);
            NatPacket.ManipV4(b, 0, b.Length, protocol, ip, port, manip).ShouldBeTrue();
            b.ShouldBe(a, $"case {i}: {Convert.ToHexString(a)}");
            if (checkOff + 2 <= a.Length && BinaryPrimitives.ReadUInt16BigEndian(a.AsSpan(checkOff)) is 0 or 0xffff) zeroResults++;
        }
        zeroResults.ShouldBeGreaterThan(0);
    }

    private static ushort Edge(Random rnd) => rnd.Next(6) switch
    {
        0 => 0,
        1 => 0xffff,
        2 => 1,
        _ => (ushort)rnd.Next(65536),
    };

    /// <summary>The kernel's steps (the rewrite as it was before session 12), on a packet whose header lengths are known.</summary>
    private static void Steps(byte[] b, byte protocol, uint newIp, ushort newPort, NatManip manip)
    {
        int addrOff = manip == NatManip.Src ? 12 : 16;
        int portOff = 20 + (manip == NatManip.Src ? 0 : 2);
        uint oldIp = BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(addrOff));
        ushort oldPort = BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(portOff));
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(portOff), newPort);
        if (protocol == IpProtocol.Tcp && b.Length >= 40)
        {
            ushort c = NatPacket.Replace(BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(36)), oldIp, newIp);
            BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(36), NatPacket.Replace(c, oldPort, newPort));
        }
        else if (protocol != IpProtocol.Tcp)
        {
            ushort check = BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(26));
            if (protocol == IpProtocol.UdpLite || check != 0)
            {
                ushort c = NatPacket.Replace(NatPacket.Replace(check, oldIp, newIp), oldPort, newPort);
                BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(26), c == 0 ? (ushort)0xffff : c);
            }
        }
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(10), NatPacket.Replace(BinaryPrimitives.ReadUInt16BigEndian(b.AsSpan(10)), oldIp, newIp));
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(addrOff), newIp);
    }
}
