using Chainwalk.Engine;
using Shouldly;
using Xunit;

namespace Chainwalk.Tests.Engine;

/// <summary>
/// The runtime's random source (<see cref="SeededRandom"/>) gives <c>new Random(seed)</c>'s sequence, method by method and
/// mixed, so that seeded traces, recorded cases and statistic draws read the numbers they read before it; and the statistic
/// draw's fast step (<see cref="SeededRandom.NextU32"/>) is <c>NextInt64(0, 2^32)</c>.
/// </summary>
public class SeededRandomTests
{
    public static TheoryData<int, string> Cases()
    {
        var d = new TheoryData<int, string>();
        int[] seeds = [0, 1, 2, 42, -7, 123456789, int.MaxValue, int.MinValue, int.MinValue + 1];
        string[] methods = ["u32", "next", "next-max", "next-min-max", "next-wide", "int64", "int64-max", "int64-range", "double", "single", "bytes", "mixed"];
        foreach (int s in seeds)
        {
            foreach (string m in methods) d.Add(s, m);
        }
        return d;
    }

    /// <summary>One call of <paramref name="method"/> (for "mixed": the kind chosen by <paramref name="k"/>), as a number.</summary>
    private static double Draw(Random r, string method, int k)
    {
        switch (method == "mixed" ? Cases_mixed[k % Cases_mixed.Length] : method)
        {
            case "u32":
                return r is SeededRandom s ? s.NextU32() : (uint)r.NextInt64(0, 1L << 32);
            case "next":
                return r.Next();
            case "next-max":
                return r.Next(k % 7 == 0 ? 1 : 65536 + k);
            case "next-min-max":
                return r.Next(-1000 - k, 5000 + 3 * k);
            case "next-wide":
                return r.Next(int.MinValue + k, int.MaxValue - k);
            case "int64":
                return r.NextInt64();
            case "int64-max":
                return r.NextInt64(1000 + k * 7919L);
            case "int64-range":
                return r.NextInt64(-(1L << 40) + k, (1L << 33) + 3 * k);
            case "double":
                return r.NextDouble();
            case "single":
                return r.NextSingle();
            default:
            {
                byte[] b = new byte[1 + k % 9];
                r.NextBytes(b);
                Span<byte> c = stackalloc byte[k % 5];
                r.NextBytes(c);
                double sum = 0;
                foreach (byte x in b) sum = sum * 257 + x;
                foreach (byte x in c) sum = sum * 257 + x;
                return sum;
            }
        }
    }

    private static readonly string[] Cases_mixed = ["u32", "next-max", "u32", "double", "next", "int64-range", "bytes", "next-min-max", "u32", "next-wide", "single", "int64"];

    [Theory]
    [MemberData(nameof(Cases))]
    public void The_sequence_is_System_Randoms_for_the_same_seed(int seed, string method)
    {
        var reference = new Random(seed);
        var ours = new SeededRandom(seed);
        for (int k = 0; k < 3000; k++)
        {
            double want = Draw(reference, method, k), got = Draw(ours, method, k);
            got.ShouldBe(want, $"draw {k} of {method} with seed {seed}");
        }
    }

    /// <summary>
    /// The draw statistic --mode random makes (xt_statistic.c: get_random_u32() &amp; 0x7FFFFFFF below the probability) through
    /// the fast step, and through a plain <see cref="Random"/> set in its place: the same answers in the same order.
    /// </summary>
    [Theory]
    [InlineData(1, 0x4000_0000u)]
    [InlineData(99, 0x2AAA_AAABu)]
    [InlineData(-5, 0x7FFF_FFFFu)]
    [InlineData(7, 1u)]
    public void Statistic_draws_through_the_fast_step_are_the_plain_generators(int seed, uint probability)
    {
        Random plain = new(seed);
        var ours = new SeededRandom(seed);
        for (int k = 0; k < 5000; k++)
        {
            uint want = (uint)plain.NextInt64(0, 1L << 32) & 0x7FFFFFFF;
            uint got = SeededRandom.U32(ours) & 0x7FFFFFFF;
            (got < probability).ShouldBe(want < probability);
            got.ShouldBe(want);
        }
        // A plain Random passed to the helper takes the virtual call: the same sequence again.
        Random a = new(seed), b = new(seed);
        for (int k = 0; k < 100; k++) SeededRandom.U32(a).ShouldBe((uint)b.NextInt64(0, 1L << 32));
    }

    [Fact]
    public void The_runtime_state_starts_with_the_seeded_generator_of_seed_1()
    {
        var state = new RuntimeState();
        state.Random.ShouldBeOfType<SeededRandom>();
        Random reference = new(1);
        for (int k = 0; k < 100; k++) state.Random.Next(1000).ShouldBe(reference.Next(1000));
    }
}
