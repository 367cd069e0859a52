using Chainwalk.Engine;
using Chainwalk.Net;
using Shouldly;
using Xunit;
using static Chainwalk.Tests.Engine.MetaRig;

namespace Chainwalk.Tests.Engine;

/// <summary>limit, quota, statistic and recent on the host clock, with their state kept between packets and commands.</summary>
public class StatefulMatchTests
{
    /// <summary>Sends packets at the given times (seconds) and returns which of them the rules dropped.</summary>
    private static string Run(Netfilter nf, params double[] times)
    {
        var sb = new System.Text.StringBuilder();
        foreach (double t in times) sb.Append(Matched(nf.Process(In(Tcp4(), at: 1000 + t))) ? 'M' : '.');
        return sb.ToString();
    }

    private static double[] Times(string spec) =>
        spec.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(s => double.Parse(s, System.Globalization.CultureInfo.InvariantCulture)).ToArray();

    [Theory]
    // A full bucket of 3 at the first packet, then one credit per second (32000 credits per 1000 jiffies).
    // Kernel check (6.18, namespace): 6 back-to-back packets, 3 matched; 2/sec burst 1 with packets 0.25 s apart, 3 of 5.
    [InlineData("--limit 1/sec --limit-burst 3", "0 0 0 0 0", "MMM..")]
    // 999 jiffies give 31968 credits, 32 short of a packet; the next jiffy completes it.
    [InlineData("--limit 1/sec --limit-burst 3", "0 0 0 0 0.999 1 1", "MMM..M.")]
    [InlineData("--limit 1/sec --limit-burst 3", "0 0 0 0 10 10 10 10", "MMM.MMM.")]
    // Half a second refills half a packet's cost: two halves make one.
    [InlineData("--limit 2/sec --limit-burst 1", "0 0 0.25 0.5 0.75", "M..M.")]
    // The default: 3/hour, burst 5.
    [InlineData("", "0 0 0 0 0 0 1199 1200", "MMMMM..M")]
    public void Limit_is_xt_limits_token_bucket(string options, string times, string expected)
    {
        Run(With("INPUT", "-m limit " + options), Times(times)).ShouldBe(expected);
    }

    [Fact]
    public void Limit_credit_arithmetic_follows_user2credits()
    {
        // HZ=1000, CREDITS_PER_JIFFY=32: 1/sec costs 32000 credits; 3/hour (avg 12,000,000) takes the overflow branch.
        Chainwalk.Extensions.Matches.LimitMatch.UserToCredits(10000).ShouldBe(32000u);
        Chainwalk.Extensions.Matches.LimitMatch.UserToCredits(12_000_000).ShouldBe(12_000_000u / 10000 * 1000 * 32);
    }

    [Fact]
    public void Limit_state_survives_a_save_and_load()
    {
        Chainwalk.Host.VirtualHost h = MakeHost();
        Load(h, "-A INPUT -m limit --limit 1/min --limit-burst 2 -j DROP");
        var nf = new Netfilter(h);
        Run(nf, 0, 0).ShouldBe("MM");
        var saved = nf.State.Save();
        var state = new RuntimeState { Now = nf.State.Now };
        state.Load(saved);
        Run(new Netfilter(h, state), 1, 30, 60).ShouldBe("..M");
    }

    [Theory]
    // 40-byte packets: 100 bytes pass two, the third empties the quota for good.
    [InlineData("--quota 100", "MM...")]
    [InlineData("! --quota 100", "..MMM")]
    [InlineData("--quota 120", "MMM..")]
    public void Quota_counts_down_the_ip_length(string options, string expected)
    {
        Run(With("INPUT", "-m quota " + options), 0, 1, 2, 3, 4).ShouldBe(expected);
    }

    [Theory]
    [InlineData("--mode nth --every 3 --packet 0", "M..M..M")]
    [InlineData("--mode nth --every 3 --packet 1", ".M..M..")]
    [InlineData("--mode nth --every 3 --packet 2", "..M..M.")]
    [InlineData("--mode nth ! --every 3 --packet 0", ".MM.MM.")]
    [InlineData("--mode nth --every 1 --packet 0", "MMMMMMM")]
    public void Statistic_nth_counts_packets(string options, string expected)
    {
        Run(With("INPUT", "-m statistic " + options), 0, 0, 0, 0, 0, 0, 0).ShouldBe(expected);
    }

    [Theory]
    [InlineData("--probability 0.0", 0)]
    [InlineData("--probability 1.0", 400)]
    public void Statistic_random_extremes(string options, int expected)
    {
        Netfilter nf = With("INPUT", "-m statistic --mode random " + options);
        Run(nf, new double[400]).Count(c => c == 'M').ShouldBe(expected);
    }

    [Fact]
    public void Statistic_random_follows_the_probability()
    {
        Netfilter nf = With("INPUT", "-m statistic --mode random --probability 0.25");
        int hits = Run(nf, new double[4000]).Count(c => c == 'M');
        hits.ShouldBeInRange(850, 1150);
    }

    private static Netfilter Recent(string rules)
    {
        Chainwalk.Host.VirtualHost h = MakeHost();
        Load(h, rules);
        return new Netfilter(h);
    }

    [Theory]
    // The classic SSH brake: drop the 4th new attempt within 60 s (kernel check, 6.18 in a namespace: of 6 back-to-back
    // packets the DROP rule took 3 and /proc/net/xt_recent/SSH held 3 stamps).
    [InlineData("-A INPUT -m recent --name SSH --rcheck --seconds 60 --hitcount 3 -j DROP\n-A INPUT -m recent --name SSH --set",
        "0 1 2 3 4 100", "...MM.")]
    // --update refreshes the stamp only when it matched, so a steady trickle stays blocked.
    [InlineData("-A INPUT -m recent --name B --update --seconds 10 --hitcount 2 -j DROP\n-A INPUT -m recent --name B --set",
        "0 5 9 14 19 40", "..MMM.")]
    // --rcheck without --seconds: any stamp at all.
    [InlineData("-A INPUT -m recent --name C --rcheck -j DROP\n-A INPUT -m recent --name C --set", "0 1 500", ".MM")]
    // --remove deletes the entry and matches; the next check misses.
    [InlineData("-A INPUT -m recent --name D --rcheck -j DROP\n-A INPUT -m recent --name D --remove\n-A INPUT -m recent --name D --set", "0 1", ".M")]
    // --set matches (and here drops) from the first packet on.
    [InlineData("-A INPUT -m recent --name E --set -j DROP", "0 1", "MM")]
    // ! --rcheck: matches while the address is unknown; the DROP keeps the packet from the --set rule, so it stays unknown.
    [InlineData("-A INPUT -m recent --name F ! --rcheck -j DROP\n-A INPUT -m recent --name F --set", "0 1", "MM")]
    // ! --rcheck after the --set: the address is known at once.
    [InlineData("-A INPUT -m recent --name G --set\n-A INPUT -m recent --name G ! --rcheck -j DROP", "0 1", "..")]
    public void Recent_lists(string rules, string times, string expected)
    {
        Run(Recent(rules), Times(times)).ShouldBe(expected);
    }

    [Fact]
    public void Recent_hitcount_counts_only_stamps_within_seconds()
    {
        // Stamps at 0, 1, 2; at 61.5 only those after 1.5 s count: one is not two.
        Netfilter nf = Recent("-A INPUT -m recent --name H --rcheck --seconds 60 --hitcount 2 -j DROP\n-A INPUT -m recent --name H --set");
        Run(nf, 0, 1, 2, 61.5).ShouldBe("..M.");
    }

    [Fact]
    public void Recent_rdest_and_mask_key_the_list()
    {
        // --mask 255.255.255.0: 10.0.0.9 and 10.0.0.77 are one entry.
        Netfilter nf = Recent("-A INPUT -m recent --name M --rcheck --mask 255.255.255.0 -j DROP\n-A INPUT -m recent --name M --set --mask 255.255.255.0");
        Matched(nf.Process(In(Tcp4("10.0.0.9")))).ShouldBeFalse();
        Matched(nf.Process(In(Tcp4("10.0.0.77")))).ShouldBeTrue();
        Matched(nf.Process(In(Tcp4("10.0.1.77", "10.0.0.1")))).ShouldBeFalse();
    }

    [Fact]
    public void Recent_rttl_requires_the_same_ttl()
    {
        Netfilter nf = Recent("-A INPUT -m recent --name T --rcheck --rttl -j DROP\n-A INPUT -m recent --name T --set");
        byte[] ttl64 = Chainwalk.Wire.PacketBuilder.Ipv4("10.0.0.9", "10.0.0.1").Ttl(64).Tcp(1, 22).Build();
        byte[] ttl63 = Chainwalk.Wire.PacketBuilder.Ipv4("10.0.0.9", "10.0.0.1").Ttl(63).Tcp(1, 22).Build();
        Matched(nf.Process(In(ttl64))).ShouldBeFalse();
        Matched(nf.Process(In(ttl63))).ShouldBeFalse();
        // The --set of the ttl-63 packet stored ttl 63 in the one entry.
        Matched(nf.Process(In(ttl63))).ShouldBeTrue();
        Matched(nf.Process(In(ttl64))).ShouldBeFalse();
    }

    [Fact]
    public void Recent_keeps_at_most_ip_list_tot_addresses()
    {
        Netfilter nf = Recent("-A INPUT -m recent --name L --rcheck -j DROP\n-A INPUT -m recent --name L --set");
        for (int i = 0; i <= Chainwalk.Extensions.Matches.RecentTable.ListTotal; i++)
            nf.Process(In(Tcp4($"10.1.{i / 256}.{i % 256}")));
        // The first address was the least recently seen when the 101st arrived: evicted.
        Matched(nf.Process(In(Tcp4("10.1.0.0")))).ShouldBeFalse();
        Matched(nf.Process(In(Tcp4("10.1.0.2")))).ShouldBeTrue();
    }

    [Fact]
    public void Recent_table_survives_a_save_and_load()
    {
        Chainwalk.Host.VirtualHost h = MakeHost();
        Load(h, "-A INPUT -m recent --name S --rcheck --seconds 60 --hitcount 2 -j DROP\n-A INPUT -m recent --name S --set");
        var nf = new Netfilter(h);
        Run(nf, 0, 1).ShouldBe("..");
        var state = new RuntimeState { Now = nf.State.Now };
        state.Load(nf.State.Save());
        Run(new Netfilter(h, state), 2).ShouldBe("M");
    }
}
