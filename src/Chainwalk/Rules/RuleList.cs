using System.Collections;
using System.Runtime.CompilerServices;

namespace Chainwalk.Rules;

/// <summary>
/// A chain's rules in order: a view of the storage the <see cref="Chain"/> itself holds (no list object per chain;
/// a kube-proxy set has a chain per endpoint), so a copy of it is the same list. Reads and writes as a
/// <see cref="List{T}"/> would.
/// </summary>
/// <remarks>
/// The storage is a gap buffer: one array with a few free slots (at most 512) where the last edit was, and a list's
/// spare capacity at the end. An insert or removal moves only the rules between the gap and the edit: edits near
/// each other (a script inserting at one position, <c>-I</c> then <c>-D</c> at the middle of 100k rules) do not shift
/// the rest of the chain each time, and one far from the last edit shifts about as many rules as a list's insert
/// would (the rules between, where a list shifts the whole tail). An append never moves the gap. A whole-table check
/// drops the free slots (<see cref="TrimExcess"/>). A chain of at most two rules without spare slots holds them in two
/// fields of its own instead of an array (a kube-proxy set's KUBE-SEP chains); its <see cref="Capacity"/> is its count.
/// </remarks>
public readonly struct RuleList : IList<Rule>, IReadOnlyList<Rule>
{
    private readonly Chain _chain;

    internal RuleList(Chain chain) => _chain = chain;

    public int Count => _chain.RuleCount;

    public Rule this[int index]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => _chain.RuleAt(index);
        set => _chain.SetRuleAt(index, value);
    }

    /// <summary>Slots held (rules and free ones); setting it to <see cref="Count"/> drops the free ones.</summary>
    public int Capacity
    {
        get => _chain.RuleCapacity;
        set => _chain.SetRuleCapacity(value);
    }

    /// <summary>Drops the free slots (a checked table is mostly kept as it is).</summary>
    public void TrimExcess()
    {
        if (Capacity > Count) _chain.SetRuleCapacity(Count);
    }

    bool ICollection<Rule>.IsReadOnly => false;

    public void Add(Rule rule) => _chain.InsertRule(_chain.RuleCount, rule);

    public void Insert(int index, Rule rule) => _chain.InsertRule(index, rule);

    public void RemoveAt(int index) => _chain.RemoveRuleAt(index);

    public bool Remove(Rule rule)
    {
        int i = IndexOf(rule);
        if (i < 0) return false;
        RemoveAt(i);
        return true;
    }

    public void Clear() => _chain.ClearRules();

    /// <summary>The position of <paramref name="rule"/> (the same object), or -1.</summary>
    public int IndexOf(Rule rule)
    {
        int n = Count;
        for (int i = 0; i < n; i++)
        {
            if (ReferenceEquals(this[i], rule)) return i;
        }
        return -1;
    }

    public bool Contains(Rule rule) => IndexOf(rule) >= 0;

    public int FindIndex(Predicate<Rule> match)
    {
        int n = Count;
        for (int i = 0; i < n; i++)
        {
            if (match(this[i])) return i;
        }
        return -1;
    }

    public void CopyTo(Rule[] array, int arrayIndex)
    {
        int n = Count;
        for (int i = 0; i < n; i++) array[arrayIndex + i] = this[i];
    }

    public Rule[] ToArray()
    {
        var a = new Rule[Count];
        CopyTo(a, 0);
        return a;
    }

    public Enumerator GetEnumerator() => new(_chain);

    IEnumerator<Rule> IEnumerable<Rule>.GetEnumerator() => GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>Rules in order (the chain must not change meanwhile, as with a list).</summary>
    public struct Enumerator : IEnumerator<Rule>
    {
        private readonly Chain _chain;
        private int _index;

        internal Enumerator(Chain chain)
        {
            _chain = chain;
            _index = -1;
            Current = null!;
        }

        public Rule Current { get; private set; }

        readonly object IEnumerator.Current => Current;

        public bool MoveNext()
        {
            int next = _index + 1;
            if (next >= _chain.RuleCount) return false;
            _index = next;
            Current = _chain.RuleAt(next);
            return true;
        }

        public void Reset()
        {
            _index = -1;
            Current = null!;
        }

        public readonly void Dispose()
        {
        }
    }
}
