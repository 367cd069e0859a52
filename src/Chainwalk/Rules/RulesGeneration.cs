namespace Chainwalk.Rules;

/// <summary>
/// A process-wide count of changes to any rule set: a rule inserted, replaced or deleted, a chain flushed, added,
/// removed or renamed, a policy set, a table added, replaced or removed. What the engine remembers about a walk
/// (<c>Engine.FlowWalkMemo</c>) holds while this count stands. Counters (and zeroing them) do not move it: they change
/// no walk's path. Like <see cref="Host.HostGeneration"/> it is global, so a change anywhere only makes memos elsewhere
/// be made again.
/// </summary>
public static class RulesGeneration
{
    private static long _value;

    /// <summary>The current generation.</summary>
    public static long Value => Volatile.Read(ref _value);

    /// <summary>Something a walk's path may depend on changed.</summary>
    public static void Changed() => Interlocked.Increment(ref _value);
}
