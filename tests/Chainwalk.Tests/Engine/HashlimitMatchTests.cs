using Chainwalk.Engine;
using Shouldly;
using Xunit;
using static Chainwalk.Tests.Engine.MetaRig;

namespace Chainwalk.Tests.Engine;

/// <summary>-m hashlimit buckets as xt_hashlimit.c keeps them (revision 3, HZ 1000).</summary>
public class HashlimitMatchTests
{
    /// <summary>Each step "t src [dport]": the packet's time (s), source and TCP destination port.</summary>
    private static string Run(string rule, string steps)
    {
        Netfilter nf = With("INPUT", "-m hashlimit " + rule);
        var sb = new System.Text.StringBuilder();
        foreach (string step in steps.Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            string[] f = step.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            double t = double.Parse(f[0], System.Globalization.CultureInfo.InvariantCulture);
            ushort dport = f.Length > 2 ? ushort.Parse(f[2], System.Globalization.CultureInfo.InvariantCulture) : (ushort)22;
            sb.Append(Matched(nf.Process(In(Tcp4(f[1], "10.0.0.1", 40000, dport), at: 1000 + t))) ? 'M' : '.');
        }
        return sb.ToString();
    }

    [Theory]
    // A bucket per source: the second source has its own burst.
    [InlineData("--hashlimit-upto 1/sec --hashlimit-burst 2 --hashlimit-mode srcip --hashlimit-name a",
        "0 10.0.0.9; 0 10.0.0.9; 0 10.0.0.9; 0 10.0.0.8; 0 10.0.0.8; 0 10.0.0.8", "MM.MM.")]
    // --hashlimit-above inverts: over the limit matches.
    [InlineData("--hashlimit-above 1/sec --hashlimit-burst 2 --hashlimit-mode srcip --hashlimit-name b",
        "0 10.0.0.9; 0 10.0.0.9; 0 10.0.0.9", "..M")]
    // No mode: one bucket for everything.
    [InlineData("--hashlimit-upto 1/sec --hashlimit-burst 2 --hashlimit-name c",
        "0 10.0.0.9; 0 10.0.0.8; 0 10.0.0.7", "MM.")]
    // --hashlimit-srcmask 24: one bucket per /24.
    [InlineData("--hashlimit-upto 1/sec --hashlimit-burst 1 --hashlimit-mode srcip --hashlimit-srcmask 24 --hashlimit-name d",
        "0 10.0.0.9; 0 10.0.0.8; 0 10.0.1.8", "M.M")]
    // dstport mode: a bucket per destination port.
    [InlineData("--hashlimit-upto 1/sec --hashlimit-burst 1 --hashlimit-mode dstport --hashlimit-name e",
        "0 10.0.0.9 22; 0 10.0.0.8 22; 0 10.0.0.8 80", "M.M")]
    // Refill: 2^37 credits per jiffy, a 1/sec packet costs 1000000 · 137438953; 999 jiffies are not enough.
    [InlineData("--hashlimit-upto 1/sec --hashlimit-burst 1 --hashlimit-name f",
        "0 10.0.0.9; 0.999 10.0.0.9; 1.999 10.0.0.9", "M.M")]
    // An idle bucket expires (1 s here) and the collector (every second) removes it: the next packet starts a full bucket.
    [InlineData("--hashlimit-upto 1/hour --hashlimit-burst 1 --hashlimit-htable-expire 1000 --hashlimit-name g",
        "0 10.0.0.9; 0.5 10.0.0.9; 5 10.0.0.9", "M.M")]
    [InlineData("--hashlimit-upto 1/hour --hashlimit-burst 1 --hashlimit-name h",
        "0 10.0.0.9; 0.5 10.0.0.9; 5 10.0.0.9", "M..")]
    public void Buckets(string rule, string steps, string expected)
    {
        Run(rule, steps).ShouldBe(expected);
    }

    [Fact]
    public void Byte_mode_spends_a_seconds_credit_in_16_byte_chunks()
    {
        // 1kb/s: cost 64527752 per chunk; a 40-byte packet is 3 chunks; a full second's credit
        // (2^22 · 1000) pays for 21 of them. The figure does not depend on HZ (250 gives the same credit).
        // Confirmed on the kernel (6.18, iptables-nft 1.8.9) in a namespace: 25 back-to-back 40-byte SYNs, 21 matched.
        string r = Run("--hashlimit-upto 1kb/s --hashlimit-name bytes", string.Join(';', Enumerable.Repeat("0 10.0.0.9", 25)));
        r.ShouldBe(new string('M', 21) + "....");
    }

    [Fact]
    public void Byte_mode_burst_refills_the_credit_that_many_times()
    {
        // --hashlimit-burst 2kb at 1kb/s: the burst is 2 refills (2048 / 1024).
        string r = Run("--hashlimit-upto 1kb/s --hashlimit-burst 2kb --hashlimit-name bb", string.Join(';', Enumerable.Repeat("0 10.0.0.9", 70)));
        r.Count(c => c == 'M').ShouldBe(21 * 3);
    }

    [Fact]
    public void Separate_rules_with_one_name_share_the_table()
    {
        Chainwalk.Host.VirtualHost h = MakeHost();
        Load(h, "-A INPUT -s 10.0.0.9 -m hashlimit --hashlimit-upto 1/min --hashlimit-burst 1 --hashlimit-name shared -j DROP\n"
              + "-A INPUT -s 10.0.0.8 -m hashlimit --hashlimit-upto 1/min --hashlimit-burst 1 --hashlimit-name shared -j DROP");
        var nf = new Netfilter(h);
        Matched(nf.Process(In(Tcp4("10.0.0.9"), at: 10))).ShouldBeTrue();
        Matched(nf.Process(In(Tcp4("10.0.0.8"), at: 10))).ShouldBeFalse();
    }

    [Fact]
    public void Buckets_survive_a_save_and_load()
    {
        Chainwalk.Host.VirtualHost h = MakeHost();
        Load(h, "-A INPUT -m hashlimit --hashlimit-upto 1/min --hashlimit-burst 2 --hashlimit-mode srcip --hashlimit-name s -j DROP");
        var nf = new Netfilter(h);
        Matched(nf.Process(In(Tcp4(), at: 10))).ShouldBeTrue();
        Matched(nf.Process(In(Tcp4(), at: 10))).ShouldBeTrue();
        var state = new RuntimeState { Now = nf.State.Now };
        state.Load(nf.State.Save());
        var again = new Netfilter(h, state);
        Matched(again.Process(In(Tcp4(), at: 11))).ShouldBeFalse();
        // One credit per minute: 30 s after the last look is half of one; a minute after the two packets, a whole one.
        Matched(again.Process(In(Tcp4(), at: 40))).ShouldBeFalse();
        Matched(again.Process(In(Tcp4(), at: 71))).ShouldBeTrue();
    }
}
