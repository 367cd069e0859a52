using Chainwalk.Engine.Compiled;
using Chainwalk.Extensions.Matches;
using Chainwalk.Rules;

namespace Chainwalk.Engine;

/// <summary>
/// The walker over the compiled form's flat entries (<see cref="FlatEntry"/>, 56 bytes per rule with its counters, every chain's in one array): the same walk as
/// <c>Walk</c> (ipt_do_table: first match, jumps, gotos, RETURN, policy; counters on the rules), reading per rule
/// the entry instead of the rule objects, and jumping by chain number (the chain's span: where its entries are). The linear walk stays the reference: this one is
/// used only without a recorded trace, for a packet with a flow key (IPv4, not a fragment, TCP/UDP header present),
/// and when the base chain has a flat form; a chain without one (made after the build) or behind its edits is walked
/// through its rule objects here, and so is every rule once a target changed the packet so that it has no key.
/// </summary>
public sealed partial class Netfilter
{
    /// <summary>
    /// A return point of the flat walk: the chain's number in the compiled form (-1: none), where its entries start (-1:
    /// walked through the rule objects), their count, the next rule; and whether the chain and its index are held beside it
    /// (<see cref="FlatStack.Chains"/>, <see cref="FlatStack.Indexes"/>) rather than being its span's. No references: a
    /// trusted jump pushes it with plain stores, not two GC write barriers (the chain and index are read back from the
    /// span, whose line the walk has read when it entered the chain).
    /// </summary>
    private record struct FlatFrame(int Number, int Start, int Count, int Next, bool Refs);

    /// <summary>One nesting level's jump stack, with the chains and indexes of return points that are not their spans'.</summary>
    private sealed class FlatStack
    {
        public readonly FlatFrame[] Frames = new FlatFrame[JumpStackSize + 1];
        public readonly Chain?[] Chains = new Chain?[JumpStackSize + 1];
        public readonly ChainIndex?[] Indexes = new ChainIndex?[JumpStackSize + 1];
    }

    private readonly List<FlatStack> _flatStacks = new();

    /// <summary>
    /// The flat walk fetches ahead (<see cref="PrefetchCandidate"/>, <see cref="PrefetchFirst"/>) only in a form of at least
    /// this many entries (256 KiB of them, a quarter of a core's L2 on this VM, whose other three quarters the walk's spans,
    /// slots, data and rule objects share): a small form stays in the cache, where the hints are pure cost. Not lower for
    /// kube's 1k services (≈ 25k entries, 1.3 MiB): measured (session 9, perf of newloop 1k) without the hints the walk's
    /// share of a SYN rose from 43 to 49 %, its stalls on the entered chain's span, entries, target slot and DNAT data.
    /// </summary>
    internal static int PrefetchFromEntries = (256 << 10) / 56;

    /// <summary>
    /// The arrival index's lookup that <c>Run</c> started fetching for a new connection's first packet (-1: none, or a
    /// burst's: it fetches the candidate itself, packets ahead).
    /// </summary>
    private int _walkArrivalToken = -1;

    /// <summary>The packet's tag in the arrival index (with <see cref="_walkArrivalToken"/>), for <see cref="CompiledRules.ArrivalJumpOf"/>.</summary>
    private uint _walkArrivalTag;

    /// <summary>
    /// <see cref="PrefetchWalkService"/> (or a burst's <c>PrefetchService</c>, packets ahead) asked for the entered service
    /// chain's lines and its neighbours' (a large form): the packet's first flat walk then leaves out its own hints
    /// (<see cref="PrefetchCandidate"/>, <see cref="PrefetchFirst"/>), which would ask for the same lines again, and whose
    /// reads of the entries and target slots to find them wait for lines still on their way. Measured (session 13, newloop,
    /// one process, on and off alternating): a SYN +5 % at 1k services, +2.6 % at 10k, +4 % at 30k; in bursts of 32 +6 / +7 /
    /// +5 %. Set per packet by <c>Run</c> (cleared for a packet not in a burst) or by the burst, cleared by the walk that reads it.
    /// A walk without the arrival's hints (RunTable alone, a packet the arrival index does not name) keeps its own.
    /// </summary>
    private bool _walkArrivalFetched;

    /// <summary>Off: the walk's own hints after the arrival's as well (for an A/B in one process; not a behaviour switch).</summary>
    internal static bool ArrivalSkipsWalkHints = true, BurstSkipsWalkHints = true;

    /// <summary>
    /// The second step of the first rule-walk lookup's prefetch for a packet not in a burst (the first fetched the index's
    /// slot and the form's record of what the slot's rule jumps to, <see cref="CompiledRules.ArrivalJumpOf"/>): the
    /// candidate rule's flat entry (kube: the service's KUBE-SERVICES rule) and the chain it jumps to (the KUBE-SVC-…
    /// chain's span, first entries and target slot, and its call-order neighbours: the endpoints' KUBE-SEP-… spans, slots
    /// and entries, whose DNAT entries hold their ranges), as the walk's own <see cref="PrefetchCandidate"/> asks for them after its index lookup,
    /// but before the receive checks and conntrack: the walk then finds them in the cache. The chain's lines only for a
    /// form large enough for the walk's hints (<see cref="PrefetchFromEntries"/>). Hints only; once per packet. What the
    /// chain's first rules lead to is left to the walk's own <see cref="PrefetchFirst"/> on entering it: asked for here
    /// after conntrack (session 11), it read the chain's entries while they were still on their way (a wait of its own).
    /// </summary>
    private void PrefetchWalkService(CompiledRules form)
    {
        int token = _walkArrivalToken;
        _walkArrivalToken = -1;
        _walkArrivalFetched = PrefetchArrivalService(form, token, _walkArrivalTag) >= 0;
    }

    /// <summary>
    /// <see cref="PrefetchWalkService"/>'s fetches for the arrival lookup <paramref name="token"/> with tag
    /// <paramref name="tag"/> (<see cref="CompiledRules.PrefetchArrival(ReadOnlySpan{byte}, out uint)"/>; its record's
    /// line fetched before): returns the entered chain's number when its lines were asked for (the burst then fetches
    /// what its first rules lead to, <see cref="PrefetchArrivalEndpoints"/>), else -1. Hints only.
    /// </summary>
    internal static int PrefetchArrivalService(CompiledRules form, int token, uint tag)
    {
        if (!form.ArrivalJumpOf(token, tag, out ArrivalJump j) || !System.Runtime.Intrinsics.X86.Sse.IsSupported) return -1;
        FlatEntry[] all = form.Entries;
        if ((uint)j.At >= (uint)all.Length) return -1;
        CacheHint.Whole(ref all[j.At]); // a 56-byte entry crosses a line at most places
        if (j.Jump < 0 || all.Length < PrefetchFromEntries) return -1;
        PrefetchJump(all, form.Spans, form.Targets, j.Jump, j.JumpStart, 4);
        if (NeighbourEntries > 0) PrefetchNeighbours(all, form.Spans, form.Targets, j.Jump, j.JumpStart);
        return j.Jump;
    }

    /// <summary>
    /// A burst's step after <see cref="PrefetchArrivalService"/> (a packet or two later, once chain <paramref name="number"/>'s
    /// span and first entries are in): what its first rules lead to, as entering it does (<see cref="PrefetchFirst"/>:
    /// kube's endpoints' KUBE-SEP-… chains and the first one's DNAT data). Hints only, range-checked.
    /// </summary>
    internal static void PrefetchArrivalEndpoints(CompiledRules form, int number)
    {
        FlatSpan[] spans = form.Spans;
        FlatEntry[] all = form.Entries;
        if ((uint)number >= (uint)spans.Length) return;
        ref FlatSpan s = ref spans[number];
        if (s.Start >= 0 && s.Count > 0 && s.Start + s.Count <= all.Length) PrefetchFirst(all, spans, form.Targets, number, s.Start, s.Count);
    }


    private Verdict WalkFlat(PacketContext ctx, Table table, Chain baseChain, int baseNumber, CompiledRules compiled, ref FlowKey key)
    {
        // RunTable raised the depth already: one stack per nesting level (a REJECT reply walks OUTPUT mid-walk).
        while (_flatStacks.Count < _walkDepth) _flatStacks.Add(new FlatStack());
        FlatStack stack = _flatStacks[_walkDepth - 1];
        Skb skb = ctx.Skb;
        bool keyOk = true;
        Chain chain = baseChain;
        int cn = baseNumber;
        // No rule of the table changed since it was compiled (RulesetEditor counts every change in Table.RuleEdits): every
        // chain's entries, index and jumps by number hold, and a jump reads the entered chain's span. Else each chain
        // entered is checked against its own edits (and jumps go by name), as CompiledRules.For does.
        bool trusted = compiled.Trusted(cn, table);
        FlatSpan[] spans = compiled.Spans;
        FlatEntry[] all;
        int start, count;
        ChainIndex? index;
        // The chain and index in hand are the span's of chain number cn (trusted, entered by number): a return point need not hold them.
        bool fromSpan = trusted;
        if (trusted)
        {
            ref FlatSpan s0 = ref spans[cn];
            start = s0.Start;
            count = s0.Count;
            index = compiled.IndexOf(in s0);
            all = compiled.Entries;
        }
        else
        {
            Enter(compiled, chain, cn, out start, out index, out count);
            all = compiled.Entries;
        }
        // The form holds the counters of the rules in its entries (beside each entry); a form whose rules another took
        // (or that gave them back) counts through the rule objects.
        if (compiled.Superseded) compiled.Reclaim();
        bool countHere = !compiled.Superseded;
        int sp = 0, i = 0;
        bool proven = false;
        FlatEntry scratch = default;
        // The walk's prefetches (a candidate's jump, an entered chain's first rules) only for a form that is not small
        // (PrefetchFromEntries): in the cache they are pure cost.
        // Nor after the arrival's fetches of this walk's service (_walkArrivalFetched): the same lines again.
        bool fetch = compiled.Entries.Length >= PrefetchFromEntries && !(_walkArrivalFetched && ArrivalSkipsWalkHints);
        _walkArrivalFetched = false;
        while (true)
        {
            if (keyOk && index is not null)
            {
                i = index.Next(i, key, out proven);
                // As Walk: a proven rule with a plain ACCEPT or DROP ends the walk without the target dispatch. With entries
                // (in step with the chain: rule i is entry i) the entry says so: the index's per-rule verdict array is not
                // read (a cold line per new connection at 30k kube services, for a rule that jumps).
                if (proven && start >= 0 && countHere && i < count)
                {
                    ref FlatEntry pe = ref all[start + i];
                    if (pe.Target is FlatTarget.Accept or FlatTarget.Drop)
                    {
                        Rule hit = pe.Rule;
                        ctx.RuleNumber = i + 1;
                        ctx.Rule = hit;
                        ctx.CurrentChain = chain;
                        ctx.RuleIndex = i;
                        int at = (pe.Flags & FlatFlags.CountOnRule) != 0 ? -1 : start + i;
                        ref Counters pc = ref at >= 0 ? ref pe.Counters : ref hit.CountersCell;
                        pc.Packets++;
                        pc.Bytes += (ulong)skb.Length;
                        ctx.Recording?.Hit(hit, at);
                        return pe.Target == FlatTarget.Accept ? Verdict.Accept : Verdict.Drop;
                    }
                }
                else if (proven && index.PlainVerdict(i) is { Kind: not VerdictKind.Continue, Rule: { } hit } plain)
                {
                    return PlainHit(ctx, chain, i, index, hit, plain.Kind, skb.Length);
                }
                if (fetch && i < count && start >= 0) PrefetchCandidate(all, spans, compiled.Targets, start + i, trusted);
            }
            if (i >= count)
            {
                // A built-in chain is never entered by a jump: the base chain is the only one of the walk.
                if (sp == 0 || ReferenceEquals(chain, baseChain)) return Policy(ctx, baseChain, null, skb);
                // The implicit RETURN at a user chain's end.
                TraceLine(ctx, chain, count + 1, "return");
                fromSpan = Pop(compiled, trusted, stack, ref sp, out chain, out cn, out start, out count, out index, out i);
                all = compiled.Entries;
                continue;
            }
            if (start < 0) scratch = FlatEntry.Generic(chain.Rules[i]);
            ref FlatEntry e = ref start < 0 ? ref scratch : ref all[start + i];
            // The context's rule, chain and rule number are set for what reads them: a match evaluated by its extension, and
            // a rule that matched (its target). An inline test reads none of them.
            bool ok;
            if (proven)
            {
                ok = true;
            }
            else if (keyOk && (e.Flags & (FlatFlags.Generic | FlatFlags.GenericOps)) == 0)
            {
                // The header here; the matches' list (a call) only when the entry has one (kube: a rule whose matches are
                // comments only, or a trailing comment, has none).
                ok = HeaderMatches(in e, in key) && (e.Ops == 0 || OneOp(ctx, in e, in key));
            }
            else
            {
                Rule rule = e.Rule;
                ctx.RuleNumber = i + 1;
                ctx.RuleIndex = i;
                if (!ReferenceEquals(ctx.Rule, rule)) ctx.Rule = rule;
                if (!ReferenceEquals(ctx.CurrentChain, chain)) ctx.CurrentChain = chain;
                ok = keyOk && (e.Flags & FlatFlags.Generic) == 0 ? MatchFlat(ctx, in e, in key) : MatchRule(ctx, rule, false) is null;
            }
            proven = false;
            if (ctx.HotDrop)
            {
                ctx.HotDrop = false;
                return Verdict.Drop;
            }
            if (!ok)
            {
                i++;
                continue;
            }
            ctx.RuleNumber = i + 1;
            ctx.RuleIndex = i;
            // The context's rule and chain (references: a GC write barrier each) only for what reads them: a target
            // extension's Execute and a traced packet's line, not a jump, a verdict or a MARK from the entry.
            // Counted beside the entry (its home), else on the rule (walked through the rule objects, or not this form's).
            int slot = start >= 0 && countHere && (e.Flags & FlatFlags.CountOnRule) == 0 ? start + i : -1;
            ref Counters counts = ref slot >= 0 ? ref e.Counters : ref e.Rule.CountersCell;
            counts.Packets++;
            counts.Bytes += (ulong)skb.Length;
            ctx.Recording?.Hit(e.Rule, slot);
            if (skb.Trace)
            {
                Rule rule = e.Rule;
                if (!ReferenceEquals(ctx.Rule, rule)) ctx.Rule = rule;
                if (!ReferenceEquals(ctx.CurrentChain, chain)) ctx.CurrentChain = chain;
                TraceLine(ctx, chain, i + 1, Unconditional(rule) && e.Target is FlatTarget.Accept or FlatTarget.Drop or FlatTarget.Return
                    ? (chain.IsBuiltin ? "policy" : "return") : "rule");
            }
            switch (e.Target)
            {
                case FlatTarget.None:
                    i++;
                    continue;
                case FlatTarget.Accept:
                    return Verdict.Accept;
                case FlatTarget.Drop:
                    return Verdict.Drop;
                case FlatTarget.Queue:
                    return Verdict.Queue(0);
                case FlatTarget.Return:
                    if (sp == 0) return Policy(ctx, baseChain, null, skb);
                    fromSpan = Pop(compiled, trusted, stack, ref sp, out chain, out cn, out start, out count, out index, out i);
                    all = compiled.Entries;
                    continue;
                case FlatTarget.Jump:
                case FlatTarget.Goto:
                {
                    if (trusted && e.Jump >= 0)
                    {
                        // By number: the entered chain's span (its entries were prefetched with it when the index named this rule).
                        int to = e.Jump;
                        ref FlatSpan s = ref spans[to];
                        if (e.Target == FlatTarget.Jump)
                        {
                            if (sp >= JumpStackSize) return Verdict.Drop;
                            // A call of an empty chain or of one unconditional MARK (kube: KUBE-PROXY-FIREWALL, KUBE-MARK-MASQ):
                            // done here, as entering, walking and returning would (the same counters, mark and context).
                            if (s.Count <= 1 && start >= 0 && CallInPlace(ctx, skb, ref s, all, countHere, keyOk, baseChain))
                            {
                                i++;
                                continue;
                            }
                            Push(stack, ref sp, fromSpan, chain, cn, start, count, index, i + 1);
                        }
                        fromSpan = true;
                        // Where the entered chain's entries start is taken from the entering entry (JumpStart), held
                        // already, so their first load does not wait on the span's (one dependent load less per jump:
                        // KUBE-SERVICES → KUBE-SVC-…, KUBE-SVC-… → KUBE-SEP-…). The span stays the truth: a chain rebuilt
                        // elsewhere since the entry was made (BuildEntries after an edit outgrew its room) leaves the hint
                        // stale, and the check (a branch the CPU predicts, not a data dependency) takes the span's.
                        cn = to;
                        chain = s.Chain;
                        start = e.JumpStart;
                        if (start != s.Start) start = StaleStart(ref s);
                        count = s.Count;
                        index = s.IndexNo < 0 ? null : compiled.SpanIndexes[s.IndexNo];
                        i = 0;
                        if (fetch && index is null) PrefetchFirst(all, spans, compiled.Targets, to, start, count);
                        continue;
                    }
                    // After an edit: by name, as the linear walk does (a renamed chain, a chain made since); the number kept
                    // when it names that chain still.
                    Chain? next = table.Find(e.Rule.Target!.Name);
                    if (next is null)
                    {
                        i++;
                        continue;
                    }
                    int nextNumber = e.Jump >= 0 && ReferenceEquals(spans[e.Jump].Chain, next) ? e.Jump : compiled.NumberOf(next);
                    if (e.Target == FlatTarget.Jump)
                    {
                        if (sp >= JumpStackSize) return Verdict.Drop;
                        Push(stack, ref sp, fromSpan, chain, cn, start, count, index, i + 1);
                    }
                    fromSpan = false;
                    chain = next;
                    cn = nextNumber;
                    i = 0;
                    Enter(compiled, chain, cn, out start, out index, out count);
                    all = compiled.Entries;
                    continue;
                }
            }
            // MARK from the entry (xt_mark.c's mark_tg: the mark's bits under the mask replaced, Continue): no call, no data
            // object, and the flow key holds (the header is not touched).
            if ((e.Flags & FlatFlags.InlineMark) != 0 && start >= 0)
            {
                skb.Mark = (skb.Mark & ~e.B) ^ e.A;
                i++;
                continue;
            }
            // A target extension: from the form's target slot (loaded with the chain's span when the walk jumped here), else
            // from the rule's TargetUse (two more objects in turn).
            Rule hitRule = e.Rule;
            if (!ReferenceEquals(ctx.Rule, hitRule)) ctx.Rule = hitRule;
            if (!ReferenceEquals(ctx.CurrentChain, chain)) ctx.CurrentChain = chain;
            ctx.Slot = -1;
            Verdict v;
            Extensions.ExtensionData?[] targets = compiled.Targets;
            Extensions.XtExtension[] extensions = compiled.TargetExtensions;
            if (e.Target == FlatTarget.Dnat)
            {
                // DNAT to one IPv4 address (xt_dnat_target_v2): the range from the entry, not from the data object.
                v = Nat.NatTargets.Bind(ctx, e.DnatRange, Nat.NatManip.Dst, "DNAT");
            }
            else if (start >= 0 && (uint)e.Jump < (uint)targets.Length && (uint)e.JumpStart < (uint)extensions.Length)
            {
                v = extensions[e.JumpStart].Execute(ctx, targets[e.Jump]!);
            }
            else
            {
                TargetUse target = hitRule.Target!;
                v = target.Extension!.Execute(ctx, target.Data!);
            }
            // A walk the target made (a REJECT reply through OUTPUT) may have rebuilt an edited chain: the entries array then
            // may be a new one (chains not rebuilt keep their places in it), and after an edit (not trusted) this chain's
            // entries may have moved: found again, the position kept.
            if (!trusted) Enter(compiled, chain, cn, out start, out index, out count);
            all = compiled.Entries;
            switch (v.Kind)
            {
                case VerdictKind.Continue:
                    // The target may have changed the header: read the key again (none, or traced from here: the rule objects).
                    keyOk = !skb.Trace && FlowKey.TryRead(skb.Packet, out key);
                    i++;
                    continue;
                case VerdictKind.Return:
                    keyOk = !skb.Trace && FlowKey.TryRead(skb.Packet, out key);
                    if (sp == 0) return Policy(ctx, baseChain, null, skb);
                    fromSpan = Pop(compiled, trusted, stack, ref sp, out chain, out cn, out start, out count, out index, out i);
                    all = compiled.Entries;
                    continue;
                default:
                    return v;
            }
        }
    }

    /// <summary>
    /// A trusted jump (not a goto) into chain <paramref name="s"/> of at most one rule, done without entering it when that is
    /// all the walk would do there: an empty chain (entered, its end, back: nothing), or one rule that matches every packet
    /// and whose target is MARK from the entry (rule 1 matched and counted, the mark set, the end, back). False when the
    /// chain is anything else (an index, no entries, the base chain, a traced packet, no flow key, a condition, another
    /// target): then the walk enters it. The context's rule number and index are left as the walk would leave them.
    /// </summary>
    private static bool CallInPlace(PacketContext ctx, Skb skb, ref FlatSpan s, FlatEntry[] all, bool countHere, bool keyOk, Chain baseChain)
    {
        if (s.IndexNo >= 0 || skb.Trace || ReferenceEquals(s.Chain, baseChain)) return false;
        if (s.Count == 0) return true;
        if (s.Start < 0 || !keyOk || (uint)s.Start >= (uint)all.Length) return false;
        ref FlatEntry m = ref all[s.Start];
        // Exactly InlineMark: no inversion, no -p, not generic, counted beside the entry; any address; no match operands.
        if (m.Flags != FlatFlags.InlineMark || m.Ops != 0 || m.SourceShift != 32 || m.DestinationShift != 32 || m.Target != FlatTarget.Extension) return false;
        ctx.RuleNumber = 1;
        ctx.RuleIndex = 0;
        int slot = countHere ? s.Start : -1;
        ref Counters counts = ref slot >= 0 ? ref m.Counters : ref m.Rule.CountersCell;
        counts.Packets++;
        counts.Bytes += (ulong)skb.Length;
        ctx.Recording?.Hit(m.Rule, slot);
        skb.Mark = (skb.Mark & ~m.B) ^ m.A;
        return true;
    }

    /// <summary>
    /// A jump's entry whose <see cref="FlatEntry.JumpStart"/> no longer names the entered chain's entries: the span's.
    /// Out of line so that the JIT keeps the check a branch (predicted) and does not turn it into a conditional move,
    /// which would make the entries' address wait on the span's load again.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static int StaleStart(ref FlatSpan s) => s.Start;

    /// <summary>
    /// On entering a chain without an index: starts loading what its first rules lead to. A jump reads the entered
    /// chain's span and then its entries: the loads of several rules then overlap instead of each waiting in turn when its
    /// rule matches (kube-proxy: KUBE-SVC-…'s endpoint rules, which jump to cold KUBE-SEP-… chains). The chain's own first
    /// target's data (its slot was prefetched with the chain's span), loaded while the rules before it are tested; a DNAT
    /// to one address has its range in its entry (<see cref="FlatTarget.Dnat"/>: KUBE-SEP-…'s, with the entries). Hints only.
    /// </summary>
    private static unsafe void PrefetchFirst(FlatEntry[] all, FlatSpan[] spans, Extensions.ExtensionData?[] targets, int number, int start, int count)
    {
        if (!System.Runtime.Intrinsics.X86.Sse.IsSupported) return;
        // A DNAT to one address has no data slot (its range is in its entry, fetched with the entries below).
        if ((uint)number < (uint)targets.Length && targets[number] is { } data)
            System.Runtime.Intrinsics.X86.Sse.Prefetch0((void*)System.Runtime.CompilerServices.Unsafe.As<Extensions.ExtensionData, nint>(ref data));
        int n = Math.Min(count, 4);
        for (int k = 0; k < n; k++)
        {
            PrefetchJump(all, spans, targets, in all[start + k], 2);
        }
    }

    /// <summary>
    /// The index named a candidate rule of a chain (entry <paramref name="at"/>, its counters inside) and, for a jump, the
    /// entered chain's span and first entries start loading together, before the entry is tested (kube-proxy's
    /// KUBE-SERVICES: the service's rule, proven by the index, then the jump to its KUBE-SVC-… chain). Hints only.
    /// </summary>
    private static void PrefetchCandidate(FlatEntry[] all, FlatSpan[] spans, Extensions.ExtensionData?[] targets, int at, bool trusted)
    {
        if (!trusted) return;
        PrefetchJump(all, spans, targets, in all[at], 4);
        if (NeighbourEntries > 0) PrefetchNeighbours(all, spans, targets, in all[at]);
    }

    /// <summary>Entries after the candidate's entered chain's first four that <see cref="PrefetchNeighbours"/> fetches (0: none).</summary>
    internal static int NeighbourEntries = 16;

    /// <summary>
    /// The chains numbered right after a candidate's entered chain, and the entries after its first four: the form numbers
    /// a table's chains in call order (<see cref="CompiledRules.CallOrder"/>: kube-proxy's KUBE-SVC-… chain, then its
    /// endpoints' KUBE-SEP-… chains), so their spans, target slots and entries (with their DNAT ranges, FlatTarget.Dnat) are laid out next to it. Fetched together with the entered chain, the callee
    /// the walk picks later (by the statistic draws) is no longer a dependent miss of its own. Hints only: past the arrays'
    /// ends or for unrelated neighbours a prefetch costs an instruction and never faults.
    /// </summary>
    private static void PrefetchNeighbours(FlatEntry[] all, FlatSpan[] spans, Extensions.ExtensionData?[] targets, in FlatEntry e)
    {
        if (e.Target is FlatTarget.Jump or FlatTarget.Goto) PrefetchNeighbours(all, spans, targets, e.Jump, e.JumpStart);
    }

    /// <summary><see cref="PrefetchNeighbours(FlatEntry[], FlatSpan[], Extensions.ExtensionData?[], in FlatEntry)"/> of a jump to chain <paramref name="jump"/>, whose entries start at <paramref name="jumpStart"/>.</summary>
    private static unsafe void PrefetchNeighbours(FlatEntry[] all, FlatSpan[] spans, Extensions.ExtensionData?[] targets, int jump, int jumpStart)
    {
        if (!System.Runtime.Intrinsics.X86.Sse.IsSupported || (uint)jump >= (uint)spans.Length || (uint)jumpStart >= (uint)all.Length) return;
        // Spans: 32 bytes each, the next two lines (the entered chain's own line was fetched by PrefetchJump).
        byte* sp = (byte*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref spans[jump]);
        System.Runtime.Intrinsics.X86.Sse.Prefetch0(sp + 64);
        System.Runtime.Intrinsics.X86.Sse.Prefetch0(sp + 128);
        // Target slots: 8 bytes each, the next line.
        if ((uint)jump < (uint)targets.Length)
            System.Runtime.Intrinsics.X86.Sse.Prefetch0((byte*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref targets[jump]) + 64);
        byte* p = (byte*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref all[jumpStart]) + 4 * System.Runtime.CompilerServices.Unsafe.SizeOf<FlatEntry>();
        byte* end = p + NeighbourEntries * System.Runtime.CompilerServices.Unsafe.SizeOf<FlatEntry>();
        for (p = (byte*)((nint)p & ~63) + 64; p < end; p += 64) System.Runtime.Intrinsics.X86.Sse.Prefetch0(p);
    }

    /// <summary>
    /// A jump's entered chain: its span, its first <paramref name="entries"/> entries (by the entry's hint of where they are;
    /// a candidate of an index: four, as many as <see cref="PrefetchFirst"/> reads; from there: two, a KUBE-SEP-… chain)
    /// and its first target extension's slot, in parallel. Hints only.
    /// </summary>
    private static void PrefetchJump(FlatEntry[] all, FlatSpan[] spans, Extensions.ExtensionData?[] targets, in FlatEntry e, int entries)
    {
        if (e.Target is not (FlatTarget.Jump or FlatTarget.Goto)) return;
        PrefetchJump(all, spans, targets, e.Jump, e.JumpStart, entries);
    }

    /// <summary><see cref="PrefetchJump(FlatEntry[], FlatSpan[], Extensions.ExtensionData?[], in FlatEntry, int)"/> of a jump to chain <paramref name="jump"/>, whose entries start at <paramref name="jumpStart"/>.</summary>
    private static unsafe void PrefetchJump(FlatEntry[] all, FlatSpan[] spans, Extensions.ExtensionData?[] targets, int jump, int jumpStart, int entries)
    {
        if ((uint)jump < (uint)spans.Length)
            CacheHint.Whole(ref spans[jump]);
        if ((uint)jump < (uint)targets.Length)
            System.Runtime.Intrinsics.X86.Sse.Prefetch0(System.Runtime.CompilerServices.Unsafe.AsPointer(ref targets[jump]));
        if ((uint)jumpStart < (uint)all.Length)
        {
            // The lines the entries span (past the array's end a prefetch is harmless: it never faults).
            byte* p = (byte*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref all[jumpStart]);
            byte* end = p + entries * System.Runtime.CompilerServices.Unsafe.SizeOf<FlatEntry>() - 1;
            for (; p <= end; p += 64) System.Runtime.Intrinsics.X86.Sse.Prefetch0(p);
            if (((nint)p & ~63) == ((nint)end & ~63)) System.Runtime.Intrinsics.X86.Sse.Prefetch0(end);
        }
    }

    /// <summary>
    /// Back in a calling chain: trusted, its entries and index as they were when the walk left it (kept in the return
    /// point); else checked again (a target may not change rules, but stay exact).
    /// </summary>
    /// <returns>Whether the chain and index are its span's (<c>fromSpan</c>).</returns>
    private static bool Pop(CompiledRules compiled, bool trusted, FlatStack stack, ref int sp, out Chain chain, out int cn, out int start, out int count, out ChainIndex? index, out int i)
    {
        FlatFrame f = stack.Frames[--sp];
        cn = f.Number;
        i = f.Next;
        if (f.Refs)
        {
            chain = stack.Chains[sp]!;
            index = stack.Indexes[sp];
        }
        else
        {
            // Pushed by a trusted walk for a chain entered by number: its span holds both.
            ref FlatSpan s = ref compiled.Spans[cn];
            chain = s.Chain;
            index = compiled.IndexOf(in s);
        }
        if (trusted && f.Start >= 0)
        {
            start = f.Start;
            count = f.Count;
            return !f.Refs;
        }
        Enter(compiled, chain, cn, out start, out index, out count);
        return false;
    }

    /// <summary>A return point; the chain and index stored beside it only when they are not chain number <paramref name="cn"/>'s span's.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static void Push(FlatStack stack, ref int sp, bool fromSpan, Chain chain, int cn, int start, int count, ChainIndex? index, int next)
    {
        stack.Frames[sp] = new FlatFrame(cn, start, count, next, !fromSpan);
        if (!fromSpan)
        {
            stack.Chains[sp] = chain;
            stack.Indexes[sp] = index;
        }
        sp++;
    }

    /// <summary>Where the entries the walk uses in <paramref name="chain"/> start (-1: the rule objects), and its index, checked against the chain's edits.</summary>
    private static void Enter(CompiledRules compiled, Chain chain, int cn, out int start, out ChainIndex? index, out int count)
    {
        start = cn < 0 ? -1 : compiled.StartOf(cn);
        index = start >= 0 ? compiled.IndexInStep(cn, chain) : compiled.For(chain);
        count = start >= 0 ? compiled.Spans[cn].Count : chain.Rules.Count;
    }

    /// <summary>
    /// A rule's condition from its flat entry (the packet has a flow key): ip_packet_match's IPv4 part, then the matches
    /// in the rule's order, inline ones from the entry, the others through their <see cref="MatchUse"/>.
    /// </summary>
    private static bool MatchFlat(PacketContext ctx, in FlatEntry e, in FlowKey key) => HeaderMatches(in e, in key) && MatchOps(ctx, in e, in key);

    /// <summary>ip_packet_match's IPv4 part of a rule's condition from its flat entry: -s, -d, -p with their inversions.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static bool HeaderMatches(in FlatEntry e, in FlowKey key)
    {
        // In the network: equal above the shift (a 64-bit shift, so that 32, any address, leaves nothing to compare).
        if ((((ulong)(key.Source ^ e.Source) >> e.SourceShift) == 0) == ((e.Flags & FlatFlags.SourceInverted) != 0)) return false;
        if ((((ulong)(key.Destination ^ e.Destination) >> e.DestinationShift) == 0) == ((e.Flags & FlatFlags.DestinationInverted) != 0)) return false;
        return (e.Flags & FlatFlags.Protocol) == 0 || ((key.Protocol == e.Protocol) != ((e.Flags & FlatFlags.ProtocolInverted) != 0));
    }

    /// <summary>Off: every match list through <see cref="MatchOps"/> (for an A/B in one process; not a behaviour switch).</summary>
    internal static bool OneOpOff;

    /// <summary>
    /// The match list of an entry whose only test is one port range or one random draw after at most one comment (kube: the
    /// KUBE-SVC-… chain's endpoint rules, its masquerade rule's --dport, KUBE-SEP-…'s DNAT rule's -m tcp), tested here
    /// without <see cref="MatchOps"/>' loop and dispatch; any other list through it. The same tests, in the same order
    /// (one op, so one draw at most), as <see cref="MatchOps"/> makes them.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static bool OneOp(PacketContext ctx, in FlatEntry e, in FlowKey key)
    {
        uint ops = e.Ops;
        // One test, at position 0 or after a comment at 0 (Skip = 1): its kind in the top nibble.
        if ((ops < 0x10 || ops < 0x100 && (ops & 0xF) == (uint)FlatOp.Skip) && !OneOpOff)
        {
            switch ((FlatOp)(ops >> (ops < 0x10 ? 0 : 4)))
            {
                case FlatOp.Ports:
                    return InPorts(in e, in key);
                case FlatOp.Random:
                    return Draw(ctx, e.A);
            }
        }
        return MatchOps(ctx, in e, in key);
    }

    /// <summary>
    /// statistic --mode random (<see cref="StatisticMatch.RandomMode"/>, not inverted): one draw below the probability. A call
    /// of its own, so the walk's loop stays small; the context's generator read here, in a small method (perf showed
    /// <c>PacketContext.Random</c> as a call of its own when the walk read it).
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static bool Draw(PacketContext ctx, uint probability) => StatisticMatch.RandomMode(ctx, probability, invert: false);

    /// <summary><see cref="FlatOp.Ports"/>: the key's ports within the entry's ranges (A: source, B: destination; low 16 bits the lowest port, high 16 bits the highest).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static bool InPorts(in FlatEntry e, in FlowKey key) =>
        key.SourcePort >= (ushort)e.A && key.SourcePort <= e.A >> 16 && key.DestinationPort >= (ushort)e.B && key.DestinationPort <= e.B >> 16;

    /// <summary>The matches of a rule's flat entry in the rule's order (<see cref="FlatEntry.Ops"/>): inline ones from the entry, the others through their <see cref="MatchUse"/>.</summary>
    private static bool MatchOps(PacketContext ctx, in FlatEntry e, in FlowKey key)
    {
        uint ops = e.Ops;
        for (int m = 0; ops != 0; m++, ops >>= 4)
        {
            switch ((FlatOp)(ops & 0xF))
            {
                case FlatOp.Skip:
                    break;
                case FlatOp.Ports:
                    // The rule's -p tcp/udp matched and the key has that header (FlowKey.TryRead).
                    // A: the source range, B: the destination range (low 16 bits the lowest port, high 16 bits the highest).
                    if (!InPorts(in e, in key)) return false;
                    break;
                case FlatOp.Mark:
                    if ((ctx.Skb.Mark & e.B) != e.A) return false;
                    break;
                case FlatOp.MarkInverted:
                    if ((ctx.Skb.Mark & e.B) == e.A) return false;
                    break;
                case FlatOp.Random:
                    if (!StatisticMatch.RandomMode(ctx, e.A, invert: false)) return false;
                    break;
                case FlatOp.RandomInverted:
                    if (!StatisticMatch.RandomMode(ctx, e.A, invert: true)) return false;
                    break;
                case FlatOp.CtState:
                {
                    // conntrack_mt's state part by the packet's ctinfo (FlatEntry.CtStateAnswers); a ctinfo without an entry
                    // is INVALID, as ConntrackHooks.TryGet says.
                    Skb skb = ctx.Skb;
                    int n = (int)skb.CtInfo;
                    if (n != (int)CtInfo.Untracked && skb.Conntrack is not global::Chainwalk.Conntrack.ConnEntry) n = 0;
                    if ((e.A & (1u << n)) == 0) return false;
                    break;
                }
                default:
                {
                    MatchUse use = e.Rule.Matches[m];
                    if (use.Extension.MatchesEveryPacket) break;
                    ctx.Slot = m;
                    if (!use.Extension.Match(ctx, use.Data) || ctx.HotDrop) return false;
                    break;
                }
            }
        }
        return true;
    }
}
