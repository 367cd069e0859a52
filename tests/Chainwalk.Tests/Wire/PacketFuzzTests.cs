using Chainwalk.Wire;
using Xunit;

namespace Chainwalk.Tests.Wire;

/// <summary>
/// Mutated and cut copies of the scapy packets: the parser and everything a parsed packet offers must never
/// throw, whatever the bytes say (a deterministic seed keeps failures reproducible).
/// </summary>
public class PacketFuzzTests
{
    [Theory]
    [MemberData(nameof(ScapyCases.Names), MemberType = typeof(ScapyCases))]
    public void Mutated_packets_never_throw(string name)
    {
        byte[] original = Convert.FromHexString(ScapyCases.Get(name).Hex);
        var random = new Random(name.Length * 7919 + original.Length);
        for (int round = 0; round < 400; round++)
        {
            byte[] b = original[..random.Next(0, original.Length + 1)];
            int flips = random.Next(1, 4);
            for (int i = 0; i < flips && b.Length > 0; i++) b[random.Next(b.Length)] = (byte)random.Next(256);
            if (round % 5 == 0 && b.Length > 0) b[0] = (byte)((b[0] & 0xf0) | random.Next(16)); // vary the IHL
            Exercise(b);
        }
    }

    private static void Exercise(byte[] b)
    {
        if (Packet.TryParse(b, out Packet? p, out PacketError error))
        {
            Assert.Equal(PacketError.None, error);
            _ = p.ToString();
            _ = p.TransportChecksumValid;
            _ = p.ReadTcpOptions();
            if (p.QuotedPacket is { } q) _ = q.ToString();
            Assert.True(Packet.UpdateChecksums(b));
            Packet fixedUp = Packet.Parse(b);
            Assert.True(fixedUp.IpChecksumValid && fixedUp.TransportChecksumValid);
        }
        else
        {
            Assert.NotEqual(PacketError.None, error);
        }
        byte[] frame = new byte[14 + b.Length];
        frame[12] = 0x08;
        b.CopyTo(frame, 14);
        _ = Packet.TryParseFrame(frame, out _, out _);
    }
}
