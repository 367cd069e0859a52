using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using Chainwalk.Engine.Compiled;

namespace Chainwalk.Engine;

/// <summary>
/// Packets processed a burst at a time (what a DPDK rx burst or the kernel's list receive, netif_receive_skb_list, hand
/// over): each packet is processed exactly as <see cref="Netfilter.Process(PacketInput, PacketResult)"/> processes it, in
/// order, while the memory the next packets will need — their bytes, their conntrack hash slot, then the entry the slot
/// holds, a SYN's first rule lookups — is fetched a few packets ahead. The fetches are hints; the one value handed over is
/// the conntrack token (the hash of the packet's own tuple, from its own bytes, as the single packet's arrival prefetch
/// computes it: <see cref="PacketResult.Ahead"/>), so results, counters and conntrack are those of packet-by-packet
/// processing.
/// </summary>
public sealed partial class Netfilter
{
    /// <summary>Packets ahead whose input object is fetched.</summary>
    private const int BurstInputAhead = 12;

    /// <summary>Packets ahead whose input bytes are fetched (read from the input object fetched before).</summary>
    private const int BurstBytesAhead = 9;

    /// <summary>Packets ahead whose conntrack slot is fetched (their tuple hashed from the bytes fetched before).</summary>
    private const int BurstSlotAhead = 4;

    /// <summary>Packets ahead whose conntrack entry is fetched (read from the slot fetched before).</summary>
    private const int BurstEntryAhead = 2;

    /// <summary>
    /// Packets ahead whose first rule-walk lookup (the arrival index's filter word and slot: kube-proxy's KUBE-SERVICES, and
    /// the form's arrival record of the slot, <see cref="ArrivalJump"/>) is fetched, for a new connection's first packet
    /// (CompiledRules.PrefetchArrival; other packets: nothing).
    /// </summary>
    private const int BurstArrivalAhead = 4;

    /// <summary>
    /// Packets ahead whose arrival bucket and, from the arrival record (fetched before), the candidate rule's entry and the
    /// chain it enters are fetched: span, first entries, target slot, call-order neighbours (kube: KUBE-SVC-… and its
    /// endpoints' KUBE-SEP-… chains), as a single packet's <see cref="PrefetchWalkService"/> does at its start.
    /// </summary>
    private const int BurstServiceAhead = 2;

    /// <summary>Packets ahead whose entered chain's first rules' jumps are fetched (kube: the endpoints' KUBE-SEP-… chains and DNAT data).</summary>
    private const int BurstEndpointsAhead = 1;

    /// <summary>
    /// Below this many connections in conntrack a burst without a new connection among its first packets fetches nothing
    /// ahead (their memory is in the cache: L2 holds about this many entries with their flow state).
    /// </summary>
    internal int BurstPlainBelow { get; set; } = 2048;

    /// <summary>
    /// What <see cref="Current"/> is while a burst's packets are processed one after another: a packet then starts inside
    /// the burst (Run starts a conntrack pool boundary only for a packet that starts outside any other), as the burst
    /// started one boundary for all its packets. Never handed to anyone, never written.
    /// </summary>
    private readonly PacketResult _inBurst = new();

    /// <summary>The tokens of the slots fetched ahead, by packet index modulo this (a power of two above the distance).</summary>
    private const int BurstRing = 8;

    /// <summary>
    /// Processes <paramref name="inputs"/> in order, each into the result at the same index of <paramref name="results"/>
    /// (reused results, as <see cref="Process(PacketInput, PacketResult)"/> takes one: each is cleared first, and whatever
    /// it held for an earlier packet is overwritten). The same processing, results, counters and conntrack state as
    /// calling that overload packet after packet and reading each result before the next call; the memory the coming
    /// packets need is fetched while the current one is processed. Every result of the burst stays valid until the next
    /// call: connections removed during the burst are not reused by it (one conntrack pool boundary per burst). An output
    /// of a packet handed over parsed (<see cref="PacketInput.Parsed"/>, as a replay does) is that packet's bytes: give
    /// each input of a burst its own packet.
    /// </summary>
    public void Process(ReadOnlySpan<PacketInput> inputs, ReadOnlySpan<PacketResult> results)
    {
        if (results.Length < inputs.Length) throw new ArgumentException("fewer results than inputs", nameof(results));
        // The references only: an input object is read once fetched (out of the cache a read of each here was a miss per
        // packet before any fetch ahead began).
        for (int i = 0; i < inputs.Length; i++)
        {
            ArgumentNullException.ThrowIfNull(inputs[i], nameof(inputs));
            ArgumentNullException.ThrowIfNull(results[i], nameof(results));
        }
        // One packet: nothing to fetch ahead, and Process starts the one pool boundary (when not nested) as the burst would.
        if (inputs.Length == 1)
        {
            Process(inputs[0], results[0]);
            return;
        }
        IConntrackHooks? ct = Conntrack;
        // Called from inside a packet's processing (a nested Process) the burst is the packets one by one as usual.
        bool top = Current is null;
        if (top) ct?.PacketStarts();
        Span<long> tokens = stackalloc long[BurstRing];
        Span<int> arrivals = stackalloc int[BurstRing];
        Span<uint> tags = stackalloc uint[BurstRing];
        Span<int> services = stackalloc int[BurstRing];
        CompiledRules? walk = Compiled;
        int n = inputs.Length;
        // The first input objects are asked for together before the first of them is read (the arrival test reads them).
        for (int j = 0; j < n && j < BurstInputAhead; j++) PrefetchObject(inputs[j]);
        // Then their bytes (each object's first field: independent loads in flight together), before the arrival test
        // below reads the first packets' headers.
        for (int j = 0; j < n && j < BurstBytesAhead; j++) PrefetchBytes(inputs[j].Bytes);
        for (int j = 0; j < n && j < BurstArrivalAhead; j++) arrivals[j] = Arrival(walk, inputs[j], out tags[j]);
        int hinted = -1;
        for (int j = 0; j < n && j < BurstArrivalAhead; j++)
        {
            if (arrivals[j] >= 0) hinted = j;
        }
        // Few connections (their entries and the packets' memory in the cache) and no new connection's walk to start: the
        // fetches ahead would only cost (≈ 20 ns a packet in the cache), so the packets go as Process takes them one by one.
        if (hinted < 0 && (ct is null || ct.Connections < BurstPlainBelow))
        {
            if (top) Current = _inBurst;
            try
            {
                for (int i = 0; i < n; i++)
                {
                    PacketResult r = results[i];
                    r.Reset();
                    Run(inputs[i], r, reuse: true);
                }
            }
            finally
            {
                if (top) Current = null;
            }
            return;
        }
        for (int j = 0; j < n && j < BurstSlotAhead; j++) tokens[j] = ct?.Prefetch(inputs[j].Bytes) ?? -1;
        for (int j = 0; j < n && j < BurstEntryAhead; j++)
        {
            if (tokens[j] >= 0) ct!.PrefetchMore(tokens[j]);
        }
        if (walk is not null && hinted >= 0)
        {
            for (int j = 0; j < n && j < BurstServiceAhead; j++) services[j] = PrefetchService(walk, arrivals[j], tags[j]);
            for (int j = 0; j < n && j < BurstEndpointsAhead; j++) PrefetchArrivalEndpoints(walk, services[j]);
        }
        if (!top)
        {
            Packets(inputs, results, ct, walk, hinted, tokens, arrivals, tags, services);
            return;
        }
        Current = _inBurst;
        try
        {
            Packets(inputs, results, ct, walk, hinted, tokens, arrivals, tags, services);
        }
        finally
        {
            Current = null;
        }
    }

    /// <summary>The burst's packets in order, each as <see cref="Run"/> processes one, the coming ones' memory fetched ahead.</summary>
    /// <remarks>
    /// <paramref name="hinted"/>: the last packet whose arrival hint was started (a new connection's SYN), -1 for none: the
    /// walk's later steps are skipped while no packet ahead has one (an established burst pays one test per packet).
    /// Whether a skipped step leaves an older candidate in the ring does not matter: every step is a hint, range-checked.
    /// </remarks>
    private void Packets(ReadOnlySpan<PacketInput> inputs, ReadOnlySpan<PacketResult> results, IConntrackHooks? ct, CompiledRules? walk,
        int hinted, Span<long> tokens, Span<int> arrivals, Span<uint> tags, Span<int> services)
    {
        int n = inputs.Length;
        // Only a packet handed over parsed is rewritten in place (others are copied first): while none has run, no packet
        // of the burst has changed another's bytes. Learnt packet by packet (each input is read when its turn comes).
        bool inPlace = false;
        // The usual conntrack called directly (no interface dispatch per packet), as the one pass calls its Track.
        var hooks = ct as Chainwalk.Conntrack.ConntrackHooks;
        for (int i = 0; i < n; i++)
        {
            if (i + BurstInputAhead < n) PrefetchObject(inputs[i + BurstInputAhead]);
            if (i + BurstBytesAhead < n) PrefetchBytes(inputs[i + BurstBytesAhead].Bytes);
            if (walk is not null)
            {
                int a = i + BurstArrivalAhead;
                if (a < n && (arrivals[a & (BurstRing - 1)] = Arrival(walk, inputs[a], out tags[a & (BurstRing - 1)])) >= 0) hinted = a;
            }
            if (hinted > i)
            {
                int d = i + BurstServiceAhead;
                if (d < n) services[d & (BurstRing - 1)] = PrefetchService(walk!, arrivals[d & (BurstRing - 1)], tags[d & (BurstRing - 1)]);
                int f = i + BurstEndpointsAhead;
                if (f < n) PrefetchArrivalEndpoints(walk!, services[f & (BurstRing - 1)]);
            }
            long own = -1;
            if (ct is not null)
            {
                int s = i + BurstSlotAhead;
                if (s < n) tokens[s & (BurstRing - 1)] = hooks is not null ? hooks.Prefetch(inputs[s].Bytes) : ct.Prefetch(inputs[s].Bytes);
                int e = i + BurstEntryAhead;
                if (e < n && tokens[e & (BurstRing - 1)] is long t and >= 0)
                {
                    if (hooks is not null) hooks.PrefetchMore(t);
                    else ct.PrefetchMore(t);
                }
                // The token was taken from the bytes BurstSlotAhead packets ago (or at the start): handed to the packet
                // only when none of the packets run since could have changed those bytes (a packet handed over parsed
                // is rewritten in place: an input sharing its array with one just before it hashes its tuple again).
                own = tokens[i & (BurstRing - 1)];
                if (inPlace && own != -1 && SharesBytes(inputs, i)) own = PacketResult.NotAhead;
            }
            PacketResult r = results[i];
            r.Reset();
            r.Ahead = ct is null ? PacketResult.NotAhead : own;
            PacketInput input = inputs[i];
            inPlace |= input.Parsed is not null;
            // The packet's service was fetched ahead (PrefetchService): its walk leaves out its own hints (FlatWalk's _walkArrivalFetched).
            _walkArrivalFetched = hinted >= i && services[i & (BurstRing - 1)] >= 0 && BurstSkipsWalkHints;
            services[i & (BurstRing - 1)] = -1;
            Run(input, r, reuse: true);
        }
    }

    /// <summary>Whether input <paramref name="i"/>'s bytes are the array of one of the <see cref="BurstSlotAhead"/> inputs before it.</summary>
    private static bool SharesBytes(ReadOnlySpan<PacketInput> inputs, int i)
    {
        byte[] bytes = inputs[i].Bytes;
        for (int k = Math.Max(0, i - BurstSlotAhead); k < i; k++)
        {
            if (ReferenceEquals(inputs[k].Bytes, bytes)) return true;
        }
        return false;
    }

    /// <summary>
    /// The arrival lookup's second step (its slot and record fetched a few packets before): the bucket, and from the
    /// record the candidate's entry and the chain it enters (<see cref="PrefetchArrivalService"/>). Returns that chain's
    /// number for the endpoints' step, or -1. Hints only.
    /// </summary>
    private static int PrefetchService(CompiledRules walk, int token, uint tag)
    {
        if (token < 0) return -1;
        walk.PrefetchArrivalMore(token);
        return PrefetchArrivalService(walk, token, tag);
    }

    /// <summary>The arrival index's first step for a packet coming in (CompiledRules.PrefetchArrival: slot and record), or -1.</summary>
    /// <remarks>
    /// The arrival index's own first test (an IPv4 TCP segment with SYN and without ACK) is made here first, on bytes fetched
    /// before: an established packet costs three byte reads instead of a call.
    /// </remarks>
    private static int Arrival(CompiledRules? walk, PacketInput input, out uint tag)
    {
        tag = 0;
        if (walk is null || input.Local) return -1;
        byte[] b = input.Bytes;
        if (b.Length < 20) return -1;
        // The TCP flags after the IP header's own length (IHL: options move them).
        int flags = (b[0] & 0x0f) * 4 + 13;
        if (b.Length <= flags || b[9] != 6 || (b[flags] & 0x12) != 0x02) return -1;
        return walk.PrefetchArrival(b, out tag);
    }

    /// <summary>
    /// A hint: the lines of an input object's fields (≈ 100 bytes after its method table pointer: up to three lines; Run
    /// reads <see cref="PacketInput.Parsed"/> and <see cref="PacketInput.At"/> past the first), by its address alone.
    /// </summary>
    private static unsafe void PrefetchObject(PacketInput input)
    {
        if (!Sse.IsSupported) return;
        byte* at = *(byte**)Unsafe.AsPointer(ref input);
        Sse.Prefetch0(at);
        Sse.Prefetch0(at + 56);
        Sse.Prefetch0(at + 100);
    }

    /// <summary>
    /// A hint: the first cache lines of a packet's bytes (its IP and transport headers); the array is not read. Its address
    /// is taken from the reference alone: <c>MemoryMarshal.GetArrayDataReference</c> made the JIT check the array for null
    /// by reading its first byte, a demand miss per packet (the burst's largest wait out of the cache, perf of kube 10k).
    /// </summary>
    private static unsafe void PrefetchBytes(byte[] bytes)
    {
        if (!Sse.IsSupported) return;
        byte* at = *(byte**)Unsafe.AsPointer(ref bytes) + 2 * sizeof(nint);
        Sse.Prefetch0(at);
        Sse.Prefetch0(at + 63);
    }
}
