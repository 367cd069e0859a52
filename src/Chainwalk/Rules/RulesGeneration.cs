namespace Chainwalk.Rules;

/// <summary>
/// The generation of one rule set (a <see cref="Ruleset"/>, shared with its shallow copies, which share its tables): it
/// moves on every change of the rule set that can change a walk's path: a rule inserted, replaced or deleted, a chain
/// flushed, added, removed or renamed, a policy set, a table added, replaced or removed. What the engine remembers about a
/// walk (<c>Engine.FlowWalkMemo</c>, the one pass's plan, a flow's input route) holds while the generation of the rule set
/// it was made for stands, so an edit of one rule set drops no memo made for another (another host's, or the other
/// family's). Counters (and zeroing them) do not move it: they change no walk's path. A table reaches the generation of
/// the rule set holding it, a chain its table's (<see cref="Table"/>, <see cref="Chain"/>).
/// </summary>
public sealed class RulesGeneration
{
    private long _value = GenerationSequence.Next();

    /// <summary>The current generation: a value no other rule set or host ever has (<see cref="GenerationSequence"/>).</summary>
    public long Value => Volatile.Read(ref _value);

    /// <summary>Something a walk's path may depend on changed.</summary>
    public void Changed() => Volatile.Write(ref _value, GenerationSequence.Next());
}

/// <summary>
/// The one process-wide sequence that rule sets' and hosts' generations (<see cref="RulesGeneration"/>,
/// <see cref="Host.VirtualHost.Generation"/>) draw their values from: a value names one holder in one state, so a memo
/// made for one rule set or host never holds for another, not even for a rule set that took the first one's place on the
/// host (a restore) and happens to have been edited as often.
/// </summary>
public static class GenerationSequence
{
    private static long _last;

    /// <summary>A value never handed out before.</summary>
    public static long Next() => Interlocked.Increment(ref _last);
}
